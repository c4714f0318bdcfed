//! Unit tests: profile translation, caching, and filters loaded in forked children.

use super::*;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

const DOCKER: &str = include_str!("../../../../bench/docker-default-seccomp.json");

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("valid profile")
}

fn small() -> LinuxSeccomp {
    profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 100,
             "args": [{"index": 0, "value": 9999, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 7, "op": "SCMP_CMP_EQ"}]},
            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 101,
             "args": [{"index": 0, "value": 8888, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 8887, "op": "SCMP_CMP_EQ"}]},
            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 102,
             "args": [{"index": 0, "value": 0xff00, "valueTwo": 0x7700, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }))
}

/// Fork; in the child set no_new_privs, load `filter`, run `body` and `_exit` with its result
/// (200 if loading failed). Returns the child's exit code.
fn in_child(filter: &Filter, body: fn() -> i32) -> i32 {
    // SAFETY: the child only calls async-signal-safe-ish code (prctl, seccomp, raw syscalls,
    // glibc's fork-safe malloc) and leaves with _exit, never returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: plain prctl/_exit calls with constant arguments.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let code = if load(filter).is_ok() { body() } else { 200 };
            // SAFETY: terminate the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child ended abnormally: {other:?}"),
        },
    }
}

fn errno_of(rc: libc::c_long) -> i32 {
    if rc == -1 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

#[test]
fn compiles_small_profile() {
    let f = compile(&small(), None).unwrap();
    assert!(!f.bpf.is_empty() && f.bpf.chunks_exact(INSN_SIZE).remainder().is_empty());
    assert!(f.flags.is_empty());
    // Permissive default: no ENOSYS stub, libseccomp's program starts by loading the arch.
    let first = decode(&f.bpf[..INSN_SIZE]);
    assert_eq!((first.code, first.k), (0x20, 4), "ld [4]");
    assert_eq!(f, compile(&small(), None).unwrap(), "deterministic");
}

#[test]
fn cache_hit_skips_libseccomp() {
    let dir = tempfile::tempdir().unwrap();
    let p = small();
    let first = compile(&p, Some(dir.path())).unwrap();
    let path = dir.path().join(format!("{}.bpf", cache_key(&p).unwrap()));
    assert_eq!(std::fs::read(&path).unwrap(), first.bpf);
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 1, "no temp files left behind");
    assert_eq!(compile(&p, Some(dir.path())).unwrap(), first);
    // A program libseccomp would never produce: returned as-is only if the cache was used.
    let fake: Vec<u8> = (0u8..16).collect();
    std::fs::write(&path, &fake).unwrap();
    assert_eq!(compile(&p, Some(dir.path())).unwrap().bpf, fake);
    // A different profile has a different key.
    let mut other = small();
    other.set_default_errno_ret(Some(5));
    assert_ne!(cache_key(&other).unwrap(), cache_key(&p).unwrap());
}

#[test]
fn corrupt_cache_recompiles() {
    let dir = tempfile::tempdir().unwrap();
    let p = small();
    let path = dir.path().join(format!("{}.bpf", cache_key(&p).unwrap()));
    std::fs::write(&path, [1u8, 2, 3, 4, 5]).unwrap();
    let f = compile(&p, Some(dir.path())).unwrap();
    assert_eq!(f.bpf, compile(&p, None).unwrap().bpf);
    assert_eq!(std::fs::read(&path).unwrap(), f.bpf, "cache file rewritten");
}

#[test]
fn unknown_syscall_is_an_error() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "foo"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let err = compile(&p, None).unwrap_err();
    assert_eq!(err.to_string(), "unknown seccomp syscall 'foo'");
}

#[test]
fn newer_syscalls_are_skipped() {
    assert!(NEWER_SYSCALLS.iter().all(|n| !n.is_empty()));
    // Pick a listed syscall this libseccomp does not know (none if libseccomp is very new).
    let Some(newer) = NEWER_SYSCALLS
        .iter()
        .find(|n| ScmpSyscall::from_name(n).is_err())
    else {
        return;
    };
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", newer], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(
        compile_uncached(&p).unwrap().skipped,
        vec![newer.to_string()]
    );
    assert!(compile(&p, None).is_ok());
}

#[test]
fn notify_is_rejected() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let err = compile(&p, None).unwrap_err().to_string();
    assert!(err.contains("seccomp notify is not supported yet"), "{err}");
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"
    }));
    assert!(matches!(
        compile(&p, None),
        Err(Error::NotifyUnsupported(_))
    ));
}

#[test]
fn invalid_rules_are_rejected() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
    }));
    assert!(compile(&p, None)
        .unwrap_err()
        .to_string()
        .contains("'read'"));
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    }));
    assert!(matches!(compile(&p, None), Err(Error::UnsupportedFlag(_))));
    let bad = Filter {
        bpf: vec![0; 12],
        flags: vec![],
    };
    assert!(matches!(load(&bad), Err(Error::InvalidProgram(_))));
}

#[test]
fn rule_equal_to_default_is_skipped() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                     {"names": ["write"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert!(compile(&p, None).is_ok());
}

#[test]
fn features_lists() {
    assert!(supported_actions().contains(&"SCMP_ACT_KILL_PROCESS"));
    assert!(!supported_actions().contains(&"SCMP_ACT_NOTIFY"));
    assert!(supported_operators().contains(&"SCMP_CMP_MASKED_EQ"));
    let archs = supported_archs();
    assert!(archs.contains(&"SCMP_ARCH_X86_64") && archs.contains(&"SCMP_ARCH_AARCH64"));
    assert!(supported_flags().contains(&"SECCOMP_FILTER_FLAG_LOG"));
}

#[test]
fn load_in_forked_child() {
    let f = compile(&small(), None).unwrap();
    let code = in_child(&f, || match std::fs::create_dir("/nonexistent-berth/x") {
        Err(e) => e.raw_os_error().unwrap_or(1),
        Ok(()) => 0,
    });
    assert_eq!(code, 38, "mkdir must fail with ENOSYS from the filter");
    let code = in_child(&f, || {
        // SAFETY: raw lseek calls on an invalid fd; they only return an error.
        let e = |fd: libc::c_long, whence: libc::c_long| {
            errno_of(unsafe { libc::syscall(libc::SYS_lseek, fd, 0 as libc::c_long, whence) })
        };
        let and = e(9999, 7) == 100 && e(9999, 0) == libc::EBADF; // different indexes: AND
        let or = e(8888, 0) == 101 && e(8887, 0) == 101; // same index: OR
        let masked = e(0x1_7755, 0) == 102 && e(0x1_7655, 0) == libc::EBADF;
        i32::from(and) | i32::from(or) << 1 | i32::from(masked) << 2
    });
    assert_eq!(code, 7, "arg semantics (bit0 AND, bit1 OR, bit2 MASKED_EQ)");
    // With the log flag the seccomp(2) path is used.
    let mut flagged = f.clone();
    flagged.flags = vec![LinuxSeccompFilterFlag::SeccompFilterFlagLog];
    let code = in_child(&flagged, || {
        i32::from(std::fs::create_dir("/nonexistent-berth/x").is_err())
    });
    assert_eq!(code, 1);
}

#[test]
fn docker_profile_compiles_and_loads() {
    let p: LinuxSeccomp = serde_json::from_str(DOCKER).unwrap();
    let c = compile_uncached(&p).unwrap();
    assert!(c
        .skipped
        .iter()
        .all(|n| NEWER_SYSCALLS.contains(&n.as_str())));
    eprintln!(
        "docker profile: {} insns, skipped {:?}",
        c.bpf.len() / 8,
        c.skipped
    );
    let f = compile(&p, None).unwrap();
    assert_eq!(f.bpf, c.bpf);
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    let code = in_child(&f, || {
        // SAFETY: raw syscalls with harmless or invalid arguments; results are only inspected.
        unsafe {
            let getpid_ok = libc::syscall(libc::SYS_getpid) > 0;
            let unshare = errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS));
            let clone3 = errno_of(libc::syscall(libc::SYS_clone3, 0, 0));
            let personality = errno_of(libc::syscall(libc::SYS_personality, 0x0040_0000));
            let beyond = errno_of(libc::syscall(1000));
            // statmount (457) is newer than the profile's largest known syscall: ENOSYS stub.
            let statmount = errno_of(libc::syscall(457, 0, 0, 0, 0));
            let ok = [
                getpid_ok,
                unshare == libc::EPERM,
                clone3 == libc::ENOSYS,
                personality == libc::EPERM,
                beyond == libc::ENOSYS,
                statmount == libc::ENOSYS,
            ];
            ok.iter()
                .enumerate()
                .map(|(i, &b)| i32::from(!b) << i)
                .sum()
        }
    });
    assert_eq!(code, 0, "bitmask of failed docker-profile checks");
}
