//! `--format` Go templates as Docker users write them: `ps --format`,
//! `ps --format 'table …'`, `inspect -f`, `image inspect -f`.

use berth_integration::containers::*;

#[test]
fn templates_on_ps_and_inspect() {
    let c = Ctx::new();
    let id = c.run_d(&["--name", "tpl", "-l", "team=a", IMG, "sleep", "1000"]);
    assert_eq!(
        c.ok(&["ps", "--format", "{{.Names}}:{{.State}}"]),
        "tpl:running\n"
    );
    let t = c.ok(&["ps", "--format", "table {{.ID}}\\t{{.Names}}"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(
        lines[0].starts_with("CONTAINER ID") && lines[0].ends_with("NAMES"),
        "{t}"
    );
    assert!(
        lines[1].starts_with(&id[..12]) && lines[1].ends_with("tpl"),
        "{t}"
    );
    assert_eq!(
        c.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{json .Config.Labels}}",
            "tpl"
        ]),
        "running {\"team\":\"a\"}\n"
    );
    let img = c.ok(&["image", "inspect", "-f", "{{.Id}}", IMG]);
    assert!(img.starts_with("sha256:"), "{img}");
    let o = c.b(&["inspect", "-f", "{{.No.Such}}", "tpl"]);
    assert_ne!(o.code, 0);
    assert!(o.err.contains("can't evaluate field No"), "{}", o.text());
    c.ok(&["rm", "-f", "tpl"]);
    c.assert_empty();
}
