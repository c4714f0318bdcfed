//! Unit tests of layout detection and path resolution, and the conformance suite every
//! backend's fake cgroupfs runs through ([`Fixture`]).

use std::rc::Rc;

use super::*;

const HOST: &str = "\
25 1 0:23 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn detect_layouts() {
    let Layout::Hybrid {
        controllers,
        unified,
    } = detect_from(HOST).unwrap()
    else {
        panic!()
    };
    assert_eq!(unified, PathBuf::from("/sys/fs/cgroup/unified"));
    let keys: Vec<&str> = controllers.keys().map(String::as_str).collect();
    assert_eq!(keys, ["cpu", "cpuacct", "memory", "name=systemd"]);
    assert_eq!(
        controllers["name=systemd"],
        PathBuf::from("/sys/fs/cgroup/systemd")
    );

    let v2 = "30 1 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n\
              31 1 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
    assert_eq!(
        detect_from(v2).unwrap(),
        Layout::V2 {
            root: "/sys/fs/cgroup".into()
        }
    );

    let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
              33 31 0:29 / /mnt/my\\040cg rw - cgroup cgroup rw,memory\n";
    let Layout::V1 { controllers } = detect_from(v1).unwrap() else {
        panic!()
    };
    assert_eq!(controllers["cpu"], controllers["cpuacct"]);
    assert_eq!(controllers["memory"], PathBuf::from("/mnt/my cg"));

    assert!(matches!(
        detect_from("25 1 0:23 / / rw - ext4 /dev/vda rw\n"),
        Err(Error::NoCgroupMounts(_))
    ));
    detect().unwrap(); // whatever this machine has, it parses
}

#[test]
fn cgroups_path_forms() {
    let layout = Layout::V2 { root: "/cg".into() };
    let m = |p: Option<&str>| Manager::with_layout(layout.clone(), p, "abc", "0::/me\n");
    assert_eq!(m(None).unwrap().path(), "/berth/abc");
    assert_eq!(m(Some("")).unwrap().path(), "/berth/abc");
    assert_eq!(m(Some("//x//y/")).unwrap().path(), "/x/y");
    assert_eq!(m(Some("x")).unwrap().path(), "/me/x");
    assert_eq!(
        m(Some("/x")).unwrap().v2_dir(),
        Some(PathBuf::from("/cg/x"))
    );
    assert!(matches!(
        m(Some("machine.slice:berth:abc")),
        Err(Error::SystemdNotSupported(_))
    ));
    assert!(matches!(m(Some("/a/../b")), Err(Error::InvalidPath { .. })));
    assert!(matches!(m(Some("/")), Err(Error::InvalidPath { .. })));
    assert!(Manager::with_layout(layout, None, "../x", "").is_err());
}

/// What the shared suite needs from one backend's fake cgroupfs.
pub(crate) trait Fixture {
    /// A fake tree in `tmp` without the controllers in `skip`.
    fn new(tmp: &Path, skip: &[&str]) -> Self;
    fn kernel(&self) -> Rc<dyn fake::Kernel>;
    fn manager(&self, path: Option<&str>) -> Manager;
    /// (file, content) expected after applying `standard()`.
    fn expected(&self, m: &Manager) -> Vec<(PathBuf, &'static str)>;
    /// Does the applied device configuration allow this access?
    fn device_allowed(&self, kind: char, major: u32, minor: u32, access: i32) -> bool;
}

/// Applies resources given as JSON.
pub(crate) fn apply(m: &Manager, json: &str) -> Result<()> {
    m.apply_resources(&serde_json::from_str(json).unwrap())
}

/// Asserts that applying `json` fails with a message containing `needle`.
pub(crate) fn apply_err(m: &Manager, json: &str, needle: &str) {
    let e = apply(m, json).expect_err(json).to_string();
    assert!(e.contains(needle), "{e:?} should contain {needle:?}");
}

fn standard() -> LinuxResources {
    serde_json::from_str(
        r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":33554432},
            "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
            "pids":{"limit":20},"blockIO":{"weight":200},
            "hugepageLimits":[{"pageSize":"2MB","limit":2097152}],
            "devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                       {"allow":true,"type":"c","access":"m"},
                       {"allow":true,"type":"c","major":136,"access":"rw"},
                       {"allow":false,"type":"c","major":136,"minor":5,"access":"rwm"}]}"#,
    )
    .unwrap()
}

fn conformance<F: Fixture>() {
    let tmp = tempfile::tempdir().unwrap();
    let f = F::new(tmp.path(), &[]);
    let _g = fake::install(f.kernel());
    fs::create_dir_all(tmp.path().join("unrelated")).unwrap();
    let m = f.manager(Some("/berth/c1"));
    assert_eq!(m.path(), "/berth/c1");
    let dirs = m.fs_paths();
    assert!(!dirs.is_empty());
    assert!(
        dirs.iter().all(|d| d.ends_with("berth/c1") && !d.exists()),
        "{dirs:?}"
    );
    m.create().unwrap();
    m.create().unwrap();
    assert!(dirs.iter().all(|d| d.is_dir()));

    m.apply_resources(&standard()).unwrap();
    for (path, want) in f.expected(&m) {
        assert_eq!(read(&path).unwrap().trim(), want, "{}", path.display());
    }
    // (type, major, minor, access bits m=1 r=2 w=4, allowed?)
    let cases = [
        ('c', 1, 3, 6, true),
        ('c', 99, 1, 1, true),
        ('c', 99, 1, 2, false),
        ('b', 8, 0, 1, false),
        ('c', 136, 2, 4, true),
        ('c', 136, 5, 2, false),
    ];
    for (kind, major, minor, access, want) in cases {
        let got = f.device_allowed(kind, major, minor, access);
        assert_eq!(got, want, "{kind} {major}:{minor} access {access}");
    }
    m.apply_resources(&LinuxResources::default()).unwrap();

    m.add_pid(1234).unwrap();
    m.add_pid(1300).unwrap();
    for d in &dirs {
        let procs = read(&d.join("cgroup.procs")).unwrap();
        assert_eq!(
            procs.split_whitespace().collect::<Vec<_>>(),
            ["1234", "1300"],
            "{}",
            d.display()
        );
        mkdir_p(&d.join("nested/deeper")).unwrap(); // made by the container itself
        write(&d.join("nested/deeper"), "cgroup.procs", "99").unwrap();
    }
    assert_eq!(m.pids().unwrap(), [99, 1234, 1300]);

    assert!(!m.is_frozen().unwrap());
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());

    m.destroy().unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{}", d.display());
        assert!(
            d.parent().unwrap().is_dir(),
            "parent of {} must stay",
            d.display()
        );
    }
    m.destroy().unwrap();
    assert_eq!(m.pids().unwrap(), Vec::<i32>::new());
    assert!(tmp.path().join("unrelated").is_dir());

    // without a memory controller, memory settings fail and name it; others work
    let tmp = tempfile::tempdir().unwrap();
    let f = F::new(tmp.path(), &["memory"]);
    let _g = fake::install(f.kernel());
    let m = f.manager(None);
    m.create().unwrap();
    apply_err(&m, r#"{"memory":{"limit":1000}}"#, "controller \"memory\"");
    apply(&m, r#"{"pids":{"limit":-1}}"#).unwrap();
    m.destroy().unwrap();
}

#[test]
fn conformance_v1() {
    conformance::<v1::tests::V1Fixture<false>>();
}

#[test]
fn conformance_hybrid() {
    conformance::<v1::tests::V1Fixture<true>>();
}

#[test]
fn conformance_v2() {
    conformance::<v2::tests::V2Fixture>();
}

#[test]
fn rdma_limit_line() {
    let l: oci_spec::runtime::LinuxRdma =
        serde_json::from_str(r#"{"hcaHandles":3,"hcaObjects":10}"#).unwrap();
    assert_eq!(
        super::rdma_limit("mlx4_0", &l),
        "mlx4_0 hca_handle=3 hca_object=10"
    );
    let l: oci_spec::runtime::LinuxRdma = serde_json::from_str(r#"{"hcaObjects":7}"#).unwrap();
    assert_eq!(super::rdma_limit("mlx5_1", &l), "mlx5_1 hca_object=7");
}
