//! runc's `patchbpf` -ENOSYS stub, prepended to libseccomp's program, plus `sock_filter` encoding.

use std::collections::BTreeMap;

use libseccomp::{ScmpAction, ScmpArch, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp};

use super::{arch_entry, ARCHES, INSN_SIZE};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_S390: u32 = 0x0000_0016;
const AUDIT_ARCH_S390X: u32 = 0x8000_0016;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32; // SECCOMP_RET_ERRNO | ENOSYS
/// Placeholder `k` of a `ja` to the end of the stub (the start of libseccomp's program).
const JA_END: Insn = Insn {
    code: BPF_JMP_JA,
    jt: 0,
    jf: 0,
    k: u32::MAX,
};

pub(super) fn encode(i: Insn) -> [u8; INSN_SIZE] {
    let mut b = [0u8; INSN_SIZE];
    b[0..2].copy_from_slice(&i.code.to_ne_bytes());
    b[2] = i.jt;
    b[3] = i.jf;
    b[4..8].copy_from_slice(&i.k.to_ne_bytes());
    b
}

pub(super) fn decode(b: &[u8]) -> libc::sock_filter {
    libc::sock_filter {
        code: u16::from_ne_bytes([b[0], b[1]]),
        jt: b[2],
        jf: b[3],
        k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    }
}

/// `if nr > last { return ENOSYS } else { goto end }`
fn enosys_above(last: u32) -> Vec<Insn> {
    vec![
        Insn {
            code: BPF_JMP_JGT_K,
            jt: 0,
            jf: 1,
            k: last,
        },
        Insn {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: RET_ENOSYS,
        },
        JA_END,
    ]
}

/// runc's -ENOSYS stub: for every listed architecture, syscall numbers above the largest one the
/// profile names (and libseccomp knows) return ENOSYS; everything else falls through to the
/// libseccomp program (which reloads what it needs). Not generated for permissive defaults.
pub(super) fn enosys_stub(
    profile: &LinuxSeccomp,
    default: ScmpAction,
    names: &[&str],
) -> Vec<Insn> {
    if matches!(
        default,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    ) || default == ScmpAction::Errno(libc::ENOSYS)
    {
        return Vec::new();
    }
    let native = ARCHES
        .iter()
        .find(|(a, s, _)| *a != Arch::ScmpArchNative && *s == ScmpArch::native());
    // audit arch -> (largest syscall, largest x32 syscall)
    let mut last: BTreeMap<u32, (Option<u32>, Option<u32>)> = BTreeMap::new();
    for arch in profile.architectures().iter().flatten() {
        let (arch, scmp, _) = match arch {
            Arch::ScmpArchNative => match native {
                Some(entry) => entry,
                None => continue,
            },
            other => arch_entry(*other),
        };
        let largest = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, *scmp).ok())
            .filter_map(|s| u32::try_from(s.as_raw_syscall()).ok())
            .max();
        let Some(largest) = largest.filter(|&n| n > 0) else {
            continue;
        };
        let (audit, x32) = match arch {
            Arch::ScmpArchX32 => (AUDIT_ARCH_X86_64, true),
            a => (*a as u32, false),
        };
        let slot = last.entry(audit).or_default();
        if x32 {
            slot.1 = Some(largest);
        } else {
            slot.0 = Some(largest);
        }
    }
    if last.is_empty() {
        return Vec::new();
    }
    let mut prog = vec![Insn {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: 4,
    }]; // A = arch
    for (audit, (normal, x32)) in last {
        let mut body = vec![Insn {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        }]; // A = nr
        if audit == AUDIT_ARCH_S390 || audit == AUDIT_ARCH_S390X {
            // Unknown "large" syscalls are multiplexed through nr 0 on s390(x).
            body.push(Insn {
                code: BPF_JMP_JEQ_K,
                jt: 0,
                jf: 1,
                k: 0,
            });
            body.push(Insn {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k: RET_ENOSYS,
            });
        }
        let block = |l: Option<u32>| l.map_or_else(|| vec![JA_END], enosys_above);
        if audit == AUDIT_ARCH_X86_64 {
            let x32_block = block(x32);
            body.push(Insn {
                code: BPF_JMP_JSET_K,
                jt: 0,
                jf: x32_block.len() as u8,
                k: X32_SYSCALL_BIT,
            });
            body.extend(x32_block);
        }
        body.extend(block(normal));
        prog.push(Insn {
            code: BPF_JMP_JEQ_K,
            jt: 0,
            jf: body.len() as u8,
            k: audit,
        });
        prog.extend(body);
    }
    let len = prog.len();
    for (i, insn) in prog.iter_mut().enumerate() {
        if *insn == JA_END {
            insn.k = (len - i - 1) as u32;
        }
    }
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = include_str!("../../../../bench/docker-default-seccomp.json");

    #[test]
    fn enosys_stub_shape() {
        let p: LinuxSeccomp = serde_json::from_str(DOCKER).unwrap();
        let names: Vec<&str> = vec!["read", "getpid"];
        let stub = enosys_stub(&p, ScmpAction::Errno(1), &names);
        assert!(!stub.is_empty());
        for (i, insn) in stub.iter().enumerate() {
            let max = (stub.len() - i - 1) as u32;
            match insn.code {
                BPF_JMP_JA => assert!(insn.k <= max),
                BPF_JMP_JEQ_K | BPF_JMP_JGT_K | BPF_JMP_JSET_K => {
                    assert!(u32::from(insn.jt) <= max && u32::from(insn.jf) <= max)
                }
                _ => {}
            }
        }
        assert!(enosys_stub(&p, ScmpAction::Allow, &names).is_empty());
    }
}
