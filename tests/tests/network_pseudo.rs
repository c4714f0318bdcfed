//! Docker's pre-defined `host` and `none` networks: listed by `network ls`
//! with their drivers (host, null), inspected in Docker's shape with the
//! running containers that use them, and never created or removed.

use berth_integration::containers::*;
use serde_json::Value;

#[test]
fn host_and_none_are_listed_inspected_and_kept() {
    let c = Ctx::new();
    // ls: both, sorted by name among any bridges, with Docker's drivers.
    let rows: Vec<Value> = c
        .ok(&["network", "ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["Name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "not sorted by name");
    for (name, driver) in [("host", "host"), ("none", "null")] {
        let r = rows
            .iter()
            .find(|r| r["Name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {rows:?}"));
        assert_eq!(r["Driver"], driver);
        assert_eq!(r["Scope"], "local");
        assert_eq!(r["ID"].as_str().unwrap().len(), 12);
    }
    let table = c.ok(&["network", "ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[1..] == ["none", "null", "local"]),
        "{table}"
    );
    let quiet = c.ok(&["network", "ls", "-q", "--no-trunc"]);
    assert_eq!(quiet.lines().count(), rows.len(), "{quiet}");

    // inspect: Docker's shape, the running containers in that mode.
    let h = c.run_d(&[
        "--network",
        "host",
        "--name",
        "on-host",
        IMG,
        "sleep",
        "100",
    ]);
    let n = c.run_d(&[
        "--network",
        "none",
        "--name",
        "on-none",
        IMG,
        "sleep",
        "100",
    ]);
    let v: Value = serde_json::from_str(&c.ok(&["network", "inspect", "host", "none"])).unwrap();
    assert_eq!(v[0]["Name"], "host");
    assert_eq!(v[0]["Driver"], "host");
    assert_eq!(v[1]["Driver"], "null");
    assert_eq!(v[0]["IPAM"]["Config"], Value::Array(vec![]));
    assert_eq!(v[0]["Containers"][&h]["Name"], "on-host");
    assert!(v[0]["Containers"].get(&n).is_none(), "{v:#}");
    assert_eq!(v[1]["Containers"][&n]["Name"], "on-none");
    // The id is stable, 64 hex, and finds the network too.
    let id = v[1]["Id"].as_str().unwrap().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let again: Value = serde_json::from_str(&c.ok(&["network", "inspect", &id[..12]])).unwrap();
    assert_eq!(again[0]["Name"], "none");
    assert_eq!(
        c.ok(&["network", "inspect", "-f", "{{.Driver}}", "none"])
            .trim(),
        "null"
    );

    // Never removed or created.
    for name in ["host", "none", &id[..12]] {
        let o = c.b(&["network", "rm", name]);
        assert_ne!(o.code, 0, "{}", o.text());
        assert!(o.err.contains("pre-defined"), "{}", o.text());
    }
    for name in ["host", "none"] {
        let o = c.b(&["network", "create", name]);
        assert_ne!(o.code, 0, "{}", o.text());
        assert!(o.err.contains("pre-defined"), "{}", o.text());
    }
    c.ok(&["rm", "-f", "on-host", "on-none"]);
}
