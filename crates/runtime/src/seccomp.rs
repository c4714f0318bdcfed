//! Seccomp: compile the OCI `linux.seccomp` object to classic BPF with libseccomp (cached on
//! disk, keyed by a hash of the profile) and install the result with `seccomp(2)`/`prctl(2)`.
//!
//! Semantics follow runc (`libcontainer/seccomp`): rules whose action equals the default action
//! are dropped; args on different indexes are ANDed, but if any index repeats every arg becomes
//! its own rule (ORed); libseccomp is told not to set no_new_privs; and for non-permissive default
//! actions a small BPF stub is prepended that returns `ENOSYS` for syscall numbers above the
//! largest syscall the profile names on each architecture (runc's `patchbpf`), so syscalls newer
//! than the profile/libseccomp get `ENOSYS` (which libc fallbacks expect) instead of the default
//! errno.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libseccomp::error::SeccompError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};

use enosys::{decode, encode, enosys_stub};

#[path = "seccomp/enosys.rs"]
mod enosys;

/// Bumped whenever the generated program changes for the same profile (invalidates caches).
const COMPILER_ID: &str = "berth-seccomp/1";
/// Kernel limit on classic BPF program length.
const BPF_MAXINSNS: usize = 4096;
const INSN_SIZE: usize = 8;

/// Real Linux syscalls (5.1 .. 6.17) that an older libseccomp may not know. Profiles naming them
/// (Docker's default does) still load: the names are skipped, as runc does.
#[rustfmt::skip]
const NEWER_SYSCALLS: &[&str] = &[
    "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register", // 5.1
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", // 5.2
    "pidfd_open", "clone3", "close_range", "openat2", "pidfd_getfd", "faccessat2", // 5.3 .. 5.9
    "process_madvise", "epoll_pwait2", "mount_setattr", "quotactl_fd", // 5.10 .. 5.14
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", // 5.13
    "memfd_secret", "process_mrelease", "futex_waitv", "set_mempolicy_home_node", // 5.14 .. 5.17
    "riscv_hwprobe", "cachestat", "fchmodat2", "map_shadow_stack", // 6.4 .. 6.6
    "futex_wake", "futex_wait", "futex_requeue", "statmount", "listmount", // 6.7, 6.8
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "mseal", "uretprobe", // 6.8 .. 6.11
    "setxattrat", "getxattrat", "listxattrat", "removexattrat", // 6.13
    "open_tree_attr", "file_getattr", "file_setattr", // 6.15, 6.17
];

/// Architectures known to oci-spec, with their libseccomp token and name.
const ARCHES: &[(Arch, ScmpArch, &str)] = &[
    (Arch::ScmpArchNative, ScmpArch::Native, "SCMP_ARCH_NATIVE"),
    (Arch::ScmpArchX86, ScmpArch::X86, "SCMP_ARCH_X86"),
    (Arch::ScmpArchX86_64, ScmpArch::X8664, "SCMP_ARCH_X86_64"),
    (Arch::ScmpArchX32, ScmpArch::X32, "SCMP_ARCH_X32"),
    (Arch::ScmpArchArm, ScmpArch::Arm, "SCMP_ARCH_ARM"),
    (
        Arch::ScmpArchAarch64,
        ScmpArch::Aarch64,
        "SCMP_ARCH_AARCH64",
    ),
    (Arch::ScmpArchMips, ScmpArch::Mips, "SCMP_ARCH_MIPS"),
    (Arch::ScmpArchMips64, ScmpArch::Mips64, "SCMP_ARCH_MIPS64"),
    (
        Arch::ScmpArchMips64n32,
        ScmpArch::Mips64N32,
        "SCMP_ARCH_MIPS64N32",
    ),
    (Arch::ScmpArchMipsel, ScmpArch::Mipsel, "SCMP_ARCH_MIPSEL"),
    (
        Arch::ScmpArchMipsel64,
        ScmpArch::Mipsel64,
        "SCMP_ARCH_MIPSEL64",
    ),
    (
        Arch::ScmpArchMipsel64n32,
        ScmpArch::Mipsel64N32,
        "SCMP_ARCH_MIPSEL64N32",
    ),
    (Arch::ScmpArchPpc, ScmpArch::Ppc, "SCMP_ARCH_PPC"),
    (Arch::ScmpArchPpc64, ScmpArch::Ppc64, "SCMP_ARCH_PPC64"),
    (
        Arch::ScmpArchPpc64le,
        ScmpArch::Ppc64Le,
        "SCMP_ARCH_PPC64LE",
    ),
    (Arch::ScmpArchS390, ScmpArch::S390, "SCMP_ARCH_S390"),
    (Arch::ScmpArchS390x, ScmpArch::S390X, "SCMP_ARCH_S390X"),
    (Arch::ScmpArchParisc, ScmpArch::Parisc, "SCMP_ARCH_PARISC"),
    (
        Arch::ScmpArchParisc64,
        ScmpArch::Parisc64,
        "SCMP_ARCH_PARISC64",
    ),
    (
        Arch::ScmpArchRiscv64,
        ScmpArch::Riscv64,
        "SCMP_ARCH_RISCV64",
    ),
    (
        Arch::ScmpArchLoongarch64,
        ScmpArch::Loongarch64,
        "SCMP_ARCH_LOONGARCH64",
    ),
    (Arch::ScmpArchM68k, ScmpArch::M68k, "SCMP_ARCH_M68K"),
    (Arch::ScmpArchSh, ScmpArch::Sh, "SCMP_ARCH_SH"),
    (Arch::ScmpArchSheb, ScmpArch::Sheb, "SCMP_ARCH_SHEB"),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown seccomp syscall '{0}'")]
    UnknownSyscall(String),
    #[error("seccomp notify is not supported yet ({0})")]
    NotifyUnsupported(String),
    #[error("seccomp flag {0} is not supported")]
    UnsupportedFlag(String),
    #[error("seccomp architecture {0} is not supported by this libseccomp")]
    UnsupportedArch(&'static str, #[source] SeccompError),
    #[error("invalid seccomp rule for syscall '{syscall}': {reason}")]
    InvalidRule { syscall: String, reason: String },
    #[error("libseccomp failed to {what}: {source}")]
    Libseccomp {
        what: String,
        #[source]
        source: SeccompError,
    },
    #[error("serializing seccomp profile for the cache key: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("exporting seccomp bpf: {0}")]
    Export(#[source] std::io::Error),
    #[error("invalid seccomp bpf program: {0}")]
    InvalidProgram(String),
    #[error("loading seccomp filter with {syscall} failed: {source}")]
    Load {
        syscall: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A compiled filter: `bpf` is the raw `struct sock_filter` array (native endian), `flags` the
/// OCI filter flags to pass to `seccomp(SECCOMP_SET_MODE_FILTER)` when loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub bpf: Vec<u8>,
    pub flags: Vec<LinuxSeccompFilterFlag>,
}

/// Compile the OCI seccomp object to classic BPF. With cache_dir, the compiled program is cached in
/// cache_dir/<sha256 of (canonical JSON of profile + libseccomp version + host arch)>.bpf, written
/// atomically (temp file + rename); a cache hit skips filter generation in libseccomp entirely.
/// A corrupt cache file (empty or size not a multiple of 8) is recompiled. Failing to write the
/// cache is not an error (the cache is only an optimisation).
pub fn compile(profile: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Filter> {
    check_supported(profile)?;
    let flags = profile.flags().clone().unwrap_or_default();
    let Some(dir) = cache_dir else {
        return Ok(Filter {
            bpf: compile_uncached(profile)?.bpf,
            flags,
        });
    };
    let key = cache_key(profile)?;
    let path = dir.join(format!("{key}.bpf"));
    if let Ok(bpf) = std::fs::read(&path) {
        if !bpf.is_empty() && bpf.chunks_exact(INSN_SIZE).remainder().is_empty() {
            return Ok(Filter { bpf, flags });
        }
    }
    let bpf = compile_uncached(profile)?.bpf;
    let _ = write_atomic(dir, &key, &bpf);
    Ok(Filter { bpf, flags })
}

/// Install the filter in the calling thread: raw `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`,
/// or `prctl(PR_SET_SECCOMP)` when there are no flags. Does not set no_new_privs itself (the
/// caller must have set it or hold CAP_SYS_ADMIN). Does not allocate unless the program buffer is
/// misaligned, so it is safe to call in a forked child.
pub fn load(filter: &Filter) -> Result<()> {
    let bytes = &filter.bpf;
    let n = bytes.len() / INSN_SIZE;
    if !bytes.chunks_exact(INSN_SIZE).remainder().is_empty() || n == 0 || n > BPF_MAXINSNS {
        return Err(Error::InvalidProgram(format!(
            "{} bytes is not 1..={BPF_MAXINSNS} instructions of {INSN_SIZE} bytes",
            bytes.len()
        )));
    }
    let mut flags: libc::c_ulong = 0;
    for flag in &filter.flags {
        flags |= kernel_flag(*flag)?;
    }
    let copy: Vec<libc::sock_filter>;
    let ptr = if bytes
        .as_ptr()
        .align_offset(std::mem::align_of::<libc::sock_filter>())
        == 0
    {
        bytes.as_ptr().cast::<libc::sock_filter>()
    } else {
        copy = bytes.chunks_exact(INSN_SIZE).map(decode).collect();
        copy.as_ptr()
    };
    let prog = libc::sock_fprog {
        len: n as libc::c_ushort,
        filter: ptr.cast_mut(),
    };
    let (rc, syscall) = if flags == 0 {
        // SAFETY: `prog` points to `n` initialised 8-byte `sock_filter` records (the byte buffer is
        // suitably aligned, or `copy` is used) that outlive the call; the kernel copies them.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        (libc::c_long::from(rc), "prctl(PR_SET_SECCOMP)")
    } else {
        // SAFETY: as above; seccomp(2) takes (operation, flags, const struct sock_fprog *).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        (rc, "seccomp(SECCOMP_SET_MODE_FILTER)")
    };
    if rc != 0 {
        return Err(Error::Load {
            syscall,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// For `berth-runtime features`: actions this build supports (SCMP_ACT_NOTIFY is not yet).
pub fn supported_actions() -> Vec<&'static str> {
    vec![
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ]
}

/// For `berth-runtime features`: argument comparison operators.
pub fn supported_operators() -> Vec<&'static str> {
    vec![
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ]
}

/// For `berth-runtime features`: architectures the linked libseccomp accepts (probed).
pub fn supported_archs() -> Vec<&'static str> {
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Allow) else {
        return Vec::new();
    };
    ARCHES
        .iter()
        .filter(|(arch, scmp, _)| *arch != Arch::ScmpArchNative && ctx.add_arch(*scmp).is_ok())
        .map(|(_, _, name)| *name)
        .collect()
}

/// For `berth-runtime features`: filter flags `load` understands.
pub fn supported_flags() -> Vec<&'static str> {
    vec![
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
    ]
}

fn kernel_flag(flag: LinuxSeccompFilterFlag) -> Result<libc::c_ulong> {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => Ok(libc::SECCOMP_FILTER_FLAG_LOG),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
            Ok(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW)
        }
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => Ok(libc::SECCOMP_FILTER_FLAG_TSYNC),
        // Only meaningful with a notify listener, which is not supported.
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => Err(Error::UnsupportedFlag(
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (needs seccomp notify)".into(),
        )),
    }
}

/// Cheap checks done before the cache lookup, so a cache hit cannot hide an unsupported profile.
fn check_supported(profile: &LinuxSeccomp) -> Result<()> {
    for flag in profile.flags().iter().flatten() {
        kernel_flag(*flag)?;
    }
    if let Some(path) = profile.listener_path() {
        return Err(Error::NotifyUnsupported(format!(
            "listenerPath {}",
            path.display()
        )));
    }
    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::NotifyUnsupported(
            "defaultAction SCMP_ACT_NOTIFY".into(),
        ));
    }
    for rule in profile.syscalls().iter().flatten() {
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            return Err(Error::NotifyUnsupported(format!(
                "SCMP_ACT_NOTIFY for {}",
                rule.names().join(",")
            )));
        }
    }
    Ok(())
}

fn libseccomp_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "unknown".into(),
    })
}

fn cache_key(profile: &LinuxSeccomp) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(profile)?);
    for part in [libseccomp_version(), std::env::consts::ARCH, COMPILER_ID] {
        hasher.update([0u8]);
        hasher.update(part.as_bytes());
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn write_atomic(dir: &Path, key: &str, bpf: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{key}.{}.{n}.tmp", std::process::id()));
    let result = File::create_new(&tmp)
        .and_then(|mut f| f.write_all(bpf))
        .and_then(|()| std::fs::rename(&tmp, dir.join(format!("{key}.bpf"))));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

struct Compiled {
    bpf: Vec<u8>,
    /// Syscall names skipped because this libseccomp does not know them (NEWER_SYSCALLS).
    #[cfg_attr(not(test), allow(dead_code))]
    skipped: Vec<String>,
}

fn ls_err(what: impl Into<String>) -> impl FnOnce(SeccompError) -> Error {
    let what = what.into();
    move |source| Error::Libseccomp { what, source }
}

fn scmp_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    who: &str,
) -> Result<ScmpAction> {
    let ret = || -> Result<u16> {
        match errno_ret {
            None => Ok(libc::EPERM as u16),
            Some(v) => u16::try_from(v).map_err(|_| Error::InvalidRule {
                syscall: who.to_string(),
                reason: format!("errnoRet {v} is larger than {}", u16::MAX),
            }),
        }
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret()?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::NotifyUnsupported(format!(
                "SCMP_ACT_NOTIFY for {who}"
            )))
        }
    })
}

fn scmp_cmp(arg: &LinuxSeccompArg, who: &str) -> Result<ScmpArgCompare> {
    let index = arg.index();
    if index >= 6 {
        return Err(Error::InvalidRule {
            syscall: who.to_string(),
            reason: format!("argument index {index} is out of range (0..=5)"),
        });
    }
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        // OCI/runc: value is the mask, valueTwo the value that (arg & value) must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

fn arch_entry(arch: Arch) -> &'static (Arch, ScmpArch, &'static str) {
    // Every oci-spec Arch variant is listed in ARCHES.
    ARCHES
        .iter()
        .find(|(a, _, _)| *a == arch)
        .unwrap_or(&ARCHES[0])
}

fn compile_uncached(profile: &LinuxSeccomp) -> Result<Compiled> {
    let default = scmp_action(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction",
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(ls_err("create a filter"))?;
    // runc: never let libseccomp set no_new_privs; the runtime decides.
    ctx.set_ctl_nnp(false)
        .map_err(ls_err("clear the no_new_privs attribute"))?;
    let arches = profile.architectures().as_deref().unwrap_or(&[]);
    for arch in arches {
        let (_, scmp, name) = arch_entry(*arch);
        ctx.add_arch(*scmp)
            .map_err(|e| Error::UnsupportedArch(name, e))?;
    }
    let rules = profile.syscalls().as_deref().unwrap_or(&[]);
    if rules.iter().map(|r| r.names().len()).sum::<usize>() > 32 {
        // Binary-tree dispatch, as runc does for long rule sets; older libseccomp lacks it.
        let _ = ctx.set_ctl_optimize(2);
    }
    let mut skipped = Vec::new();
    let mut known = Vec::new();
    for rule in rules {
        let who = rule.names().join(",");
        let action = scmp_action(rule.action(), rule.errno_ret(), &who)?;
        let conds = rule
            .args()
            .iter()
            .flatten()
            .map(|a| scmp_cmp(a, &who))
            .collect::<Result<Vec<_>>>()?;
        let mut per_index = [0u8; 6];
        rule.args()
            .iter()
            .flatten()
            .for_each(|a| per_index[a.index()] += 1);
        let split = per_index.iter().any(|&n| n > 1);
        for name in rule.names() {
            let sys = match ScmpSyscall::from_name(name) {
                Ok(sys) => sys,
                Err(_) if NEWER_SYSCALLS.contains(&name.as_str()) => {
                    skipped.push(name.clone());
                    continue;
                }
                Err(_) => return Err(Error::UnknownSyscall(name.clone())),
            };
            known.push(name.as_str());
            if action == default {
                continue; // libseccomp rejects rules equal to the default action
            }
            let what = || format!("add a rule for syscall '{name}'");
            if split {
                // runc: if any arg index repeats, every condition becomes its own rule (ORed).
                for cond in &conds {
                    ctx.add_rule_conditional(action, sys, std::slice::from_ref(cond))
                        .map_err(ls_err(what()))?;
                }
            } else {
                ctx.add_rule_conditional(action, sys, &conds)
                    .map_err(ls_err(what()))?;
            }
        }
    }
    let program = export(&ctx)?;
    let mut bpf = enosys_stub(profile, default, &known)
        .iter()
        .flat_map(|i| encode(*i))
        .collect::<Vec<u8>>();
    bpf.extend_from_slice(&program);
    if bpf.len() / INSN_SIZE > BPF_MAXINSNS {
        return Err(Error::InvalidProgram(format!(
            "{} instructions exceed the kernel limit of {BPF_MAXINSNS}",
            bpf.len() / INSN_SIZE
        )));
    }
    skipped.sort();
    skipped.dedup();
    Ok(Compiled { bpf, skipped })
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    // SAFETY: the name is a valid NUL-terminated string; memfd_create returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Export(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created above and is owned by nothing else.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file)
        .map_err(ls_err("export the bpf program"))?;
    let mut bpf = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bpf))
        .map_err(Error::Export)?;
    if bpf.is_empty() || !bpf.chunks_exact(INSN_SIZE).remainder().is_empty() {
        return Err(Error::InvalidProgram(format!(
            "libseccomp exported {} bytes",
            bpf.len()
        )));
    }
    Ok(bpf)
}

#[cfg(test)]
#[path = "seccomp/tests.rs"]
mod tests;
