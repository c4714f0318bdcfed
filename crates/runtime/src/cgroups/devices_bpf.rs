//! Device rules: parsing of the OCI `linux.resources.devices` list (shared with v1) and,
//! for cgroup v2, an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE built by hand and
//! loaded/attached with the raw bpf(2) syscall (like runc's devicefilter.go).
//!
//! Semantics (same result as the v1 kernel list for the usual configs): a rule of type
//! `a` resets everything to its action (as writing "a" to devices.allow/deny does);
//! otherwise the last rule that matches the device and names an access bit decides that
//! bit; a request is allowed when every requested bit (r, w, m) is allowed. Without an
//! `a` rule the default is deny.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::{Error, Result};

// bpf(2) commands, program/attach types and flags (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

// struct bpf_cgroup_dev_ctx { u32 access_type /* (access << 16) | type */; u32 major; u32 minor; }
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Opcodes: class | op | source.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// One `struct bpf_insn`: opcode, dst (low nibble) and src (high nibble) registers,
/// jump offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    #[cfg(test)]
    pub(crate) fn dst(&self) -> usize {
        usize::from(self.regs & 0x0f)
    }
    #[cfg(test)]
    pub(crate) fn src(&self) -> usize {
        usize::from(self.regs >> 4)
    }
    #[cfg(test)]
    pub(crate) fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// A validated device rule. `kind == None` is type `a` (all devices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub kind: Option<i32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: i32,
}

impl Rule {
    /// The line written to v1 devices.allow / devices.deny, e.g. "c 1:3 rwm".
    pub(crate) fn v1_string(&self) -> String {
        let Some(kind) = self.kind else {
            return "a".into();
        };
        let t = if kind == DEV_BLOCK { 'b' } else { 'c' };
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        let mut acc = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                acc.push(c);
            }
        }
        format!("{t} {}:{} {acc}", n(self.major), n(self.minor))
    }
}

fn bad(setting: &str, value: impl ToString, reason: &str) -> Error {
    Error::InvalidValue {
        setting: format!("devices.{setting}"),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Validates the OCI rules: type a/b/c (u = c; unset = a), major/minor -1 or unset =
/// wildcard, access made of r, w, m (unset or empty = rwm).
pub(crate) fn parse_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let num = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
        match v {
            None | Some(-1) => Ok(None),
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
            Some(n) => Err(bad(what, n, "expected -1 (any) or a device number")),
        }
    };
    rules
        .iter()
        .map(|r| {
            let kind = match r.typ() {
                None | Some(LinuxDeviceType::A) => None,
                Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
                Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
                Some(LinuxDeviceType::P) => {
                    return Err(bad("type", "p", "the device cgroup only knows a, b and c"))
                }
            };
            let mut access = 0;
            for ch in r.access().as_deref().unwrap_or("").chars() {
                access |= match ch {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => {
                        return Err(bad(
                            "access",
                            r.access().as_deref().unwrap_or(""),
                            "expected a combination of r, w and m",
                        ))
                    }
                };
            }
            Ok(Rule {
                allow: r.allow(),
                kind,
                major: num(r.major(), "major")?,
                minor: num(r.minor(), "minor")?,
                access: if access == 0 { ACC_ALL } else { access },
            })
        })
        .collect()
}

/// Builds the filter. Registers: r2 type, r3 requested access, r4 major, r5 minor,
/// r6 requested bits not yet decided. Rules are emitted last first; each block ends in
/// an exit or falls through to the next block.
pub(crate) fn program(rules: &[Rule]) -> Vec<Insn> {
    let (default_allow, rules) = match rules.iter().rposition(|r| r.kind.is_none()) {
        Some(i) => (rules[i].allow, &rules[i + 1..]),
        None => (false, rules),
    };
    let mut p = vec![
        Insn::new(LDX_MEM_W, 2, 1, 0, 0),
        Insn::new(ALU32_AND_K, 2, 0, 0, 0xffff),
        Insn::new(LDX_MEM_W, 3, 1, 0, 0),
        Insn::new(ALU32_RSH_K, 3, 0, 0, 16),
        Insn::new(LDX_MEM_W, 4, 1, 4, 0),
        Insn::new(LDX_MEM_W, 5, 1, 8, 0),
        Insn::new(ALU32_MOV_X, 6, 3, 0, 0),
    ];
    // Jumps to the next block carry this placeholder offset until the block is done.
    const NEXT: i16 = i16::MIN;
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        if let Some(kind) = rule.kind {
            block.push(Insn::new(JNE_K, 2, 0, NEXT, kind));
        }
        if let Some(major) = rule.major {
            block.push(Insn::new(JNE_K, 4, 0, NEXT, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push(Insn::new(JNE_K, 5, 0, NEXT, minor as i32));
        }
        match (rule.allow, rule.access == ACC_ALL) {
            (_, true) => {}
            // allow: these bits are decided; accept once nothing is left undecided
            (true, false) => block.extend([
                Insn::new(ALU32_AND_K, 6, 0, 0, !rule.access & ACC_ALL),
                Insn::new(JNE_K, 6, 0, NEXT, 0),
            ]),
            // deny: reject if an undecided requested bit is one of these
            (false, false) => block.extend([
                Insn::new(ALU32_MOV_X, 1, 6, 0, 0),
                Insn::new(ALU32_AND_K, 1, 0, 0, rule.access),
                Insn::new(JEQ_K, 1, 0, NEXT, 0),
            ]),
        }
        block.extend([
            Insn::new(ALU32_MOV_K, 0, 0, 0, i32::from(rule.allow)),
            Insn::new(EXIT, 0, 0, 0, 0),
        ]);
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.off == NEXT {
                insn.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.extend([
        Insn::new(ALU32_MOV_K, 0, 0, 0, i32::from(default_allow)),
        Insn::new(EXIT, 0, 0, 0, 0),
    ]);
    p
}

/// Builds, loads and attaches the program for `rules` to the cgroup2 directory `dir`,
/// replacing the device programs attached there before (ours from an earlier apply).
pub(crate) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = program(&parse_rules(rules)?);
    #[cfg(test)]
    if super::fake::with(|k| k.bpf(dir, &prog)) == Some(true) {
        return Ok(());
    }
    let prog_fd = load(&prog)?;
    attach(dir, &prog_fd)
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] prefix of `union bpf_attr`
    // for `cmd`, and we pass its exact size; the kernel reads (and for BPF_PROG_QUERY
    // writes) only within it. Pointers stored inside it are kept alive by the callers
    // for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned_fd(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful bpf(2) call that creates a new file
    // descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

fn load_once(prog: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    const LICENSE: &[u8] = b"Apache\0";
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"berth_dev");
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
    };
    sys_bpf(BPF_PROG_LOAD, &mut attr).map(owned_fd)
}

/// BPF_PROG_LOAD; on failure the verifier log is part of the error.
pub(crate) fn load(prog: &[Insn]) -> Result<OwnedFd> {
    load_once(prog, None).map_err(|source| {
        let mut buf = vec![0u8; 1 << 16];
        let _ = load_once(prog, Some(&mut buf));
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        let log = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        Error::Bpf {
            op: "prog load",
            path: "(device filter)".into(),
            source,
            log: if log.is_empty() {
                log
            } else {
                format!("; verifier log:\n{log}")
            },
        }
    })
}

#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Ids of the device programs attached directly to the cgroup `cg`.
fn query(cg: RawFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 16];
    loop {
        let mut attr = QueryAttr {
            target_fd: cg as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            _pad: 0,
        };
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e)
                if e.raw_os_error() == Some(libc::ENOSPC) && attr.prog_cnt as usize > ids.len() =>
            {
                ids.resize(attr.prog_cnt as usize, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned_fd)
}

fn attach_raw(cg: RawFd, prog: RawFd, flags: u32, replace: RawFd) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cg as u32,
        attach_bpf_fd: prog as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: replace as u32,
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

fn detach_raw(cg: RawFd, prog: RawFd) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cg as u32,
        attach_bpf_fd: prog as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    sys_bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// Attaches with BPF_F_ALLOW_MULTI. A single old program is swapped atomically with
/// BPF_F_REPLACE; otherwise (or on kernels without it) the new one is attached first and
/// the old ones detached after, so there is never a moment without a filter.
pub(crate) fn attach(dir: &Path, prog: &OwnedFd) -> Result<()> {
    let err = |op: &'static str| {
        move |source: io::Error| Error::Bpf {
            op,
            path: dir.into(),
            source,
            log: String::new(),
        }
    };
    let cg = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|source| Error::Read {
            path: dir.into(),
            source,
        })?;
    let cg = cg.as_raw_fd();
    let old_ids = query(cg).map_err(err("prog query"))?;
    let old: Vec<OwnedFd> = old_ids
        .iter()
        .filter_map(|id| prog_fd_by_id(*id).ok())
        .collect();
    if let [only] = old.as_slice() {
        let flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
        if attach_raw(cg, prog.as_raw_fd(), flags, only.as_raw_fd()).is_ok() {
            return Ok(());
        }
    }
    attach_raw(cg, prog.as_raw_fd(), BPF_F_ALLOW_MULTI, 0).map_err(err("prog attach"))?;
    for fd in &old {
        match detach_raw(cg, fd.as_raw_fd()) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(err("prog detach")(e)),
            _ => {}
        }
    }
    Ok(())
}

/// Ids of the device programs attached to `dir` (diagnostics and tests).
#[allow(dead_code)]
pub(crate) fn attached_ids(dir: &Path) -> Result<Vec<u32>> {
    let cg = File::open(dir).map_err(|source| Error::Read {
        path: dir.into(),
        source,
    })?;
    query(cg.as_raw_fd()).map_err(|source| Error::Bpf {
        op: "prog query",
        path: dir.into(),
        source,
        log: String::new(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `prog` on a device access like the kernel would; supports the opcodes we emit.
    pub(crate) fn run(prog: &[Insn], kind: i32, major: u32, minor: u32, access: i32) -> u64 {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as isize + isize::from(i.off)) as usize;
                }
            };
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(i.src(), 1);
                    r[i.dst()] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU32_AND_K => r[i.dst()] = u64::from(r[i.dst()] as u32 & i.imm as u32),
                ALU32_RSH_K => r[i.dst()] = u64::from((r[i.dst()] as u32) >> i.imm),
                ALU32_MOV_K => r[i.dst()] = u64::from(i.imm as u32),
                ALU32_MOV_X => r[i.dst()] = u64::from(r[i.src()] as u32),
                JEQ_K => jump(r[i.dst()] == i.imm as i64 as u64, &mut pc),
                JNE_K => jump(r[i.dst()] != i.imm as i64 as u64, &mut pc),
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    /// Reference model: a per-bit list walk, kept independent of `program`.
    pub(crate) fn model(rules: &[Rule], kind: i32, major: u32, minor: u32, access: i32) -> bool {
        let mut allowed = [false; 3];
        for rule in rules {
            let Some(k) = rule.kind else {
                allowed = [rule.allow; 3];
                continue;
            };
            if k == kind
                && rule.major.is_none_or(|m| m == major)
                && rule.minor.is_none_or(|m| m == minor)
            {
                for (i, bit) in [ACC_MKNOD, ACC_READ, ACC_WRITE].into_iter().enumerate() {
                    if rule.access & bit != 0 {
                        allowed[i] = rule.allow;
                    }
                }
            }
        }
        [ACC_MKNOD, ACC_READ, ACC_WRITE]
            .into_iter()
            .enumerate()
            .all(|(i, bit)| access & bit == 0 || allowed[i])
    }

    /// A line as written to v1 devices.allow/deny ("allow c 1:3 rwm", "deny a").
    pub(crate) fn v1_line_rule(line: &str) -> Rule {
        let mut w = line.split([' ', ':']);
        let allow = w.next() == Some("allow");
        let kind = match w.next() {
            Some("c") => Some(DEV_CHAR),
            Some("b") => Some(DEV_BLOCK),
            _ => None,
        };
        let num = |s: Option<&str>| s.and_then(|s| s.parse().ok());
        let (major, minor) = (num(w.next()), num(w.next()));
        let bit = |c| match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => ACC_MKNOD,
        };
        let access = w.next().unwrap_or("rwm").chars().map(bit).sum();
        Rule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    fn rule(json: &str) -> Rule {
        let r: LinuxDeviceCgroup = serde_json::from_str(json).unwrap();
        parse_rules(&[r]).unwrap()[0]
    }

    #[test]
    fn encoding_matches_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        // r2 = *(u32 *)(r1 + 0)
        assert_eq!(
            Insn::new(LDX_MEM_W, 2, 1, 0, 0).to_bytes(),
            [0x61, 0x12, 0, 0, 0, 0, 0, 0]
        );
        // if r4 != 136 goto +3
        assert_eq!(
            Insn::new(JNE_K, 4, 0, 3, 136).to_bytes(),
            [0x55, 0x04, 3, 0, 136, 0, 0, 0]
        );
        // w2 &= 0xffff ; exit
        assert_eq!(
            Insn::new(ALU32_AND_K, 2, 0, 0, 0xffff).to_bytes(),
            [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(
            Insn::new(EXIT, 0, 0, 0, 0).to_bytes(),
            [0x95, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
    }

    #[test]
    fn program_shape_for_simple_rules() {
        // deny-all + allow c 1:3 rwm: prologue(7) + [type, major, minor, mov, exit] + default(2)
        let p = program(&[
            rule(r#"{"allow":false,"access":"rwm"}"#),
            rule(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#),
        ]);
        assert_eq!(p.len(), 14);
        assert_eq!(p[7], Insn::new(JNE_K, 2, 0, 4, DEV_CHAR));
        assert_eq!(p[9], Insn::new(JNE_K, 5, 0, 2, 3));
        assert_eq!(
            &p[12..],
            &[
                Insn::new(ALU32_MOV_K, 0, 0, 0, 0),
                Insn::new(EXIT, 0, 0, 0, 0)
            ]
        );
        // "allow a" makes the default accept and drops everything before it
        let p = program(&[
            rule(r#"{"allow":true,"type":"c","major":9,"access":"r"}"#),
            rule(r#"{"allow":true}"#),
        ]);
        assert_eq!(p.len(), 9);
        assert_eq!(p[7], Insn::new(ALU32_MOV_K, 0, 0, 0, 1));
    }

    #[test]
    fn parse_and_v1_strings() {
        assert_eq!(
            rule(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#).v1_string(),
            "c 1:3 rwm"
        );
        assert_eq!(
            rule(r#"{"allow":true,"type":"b","major":-1,"access":"mr"}"#).v1_string(),
            "b *:* rm"
        );
        assert_eq!(
            rule(r#"{"allow":false,"type":"u","major":5}"#).v1_string(),
            "c 5:* rwm"
        );
        assert_eq!(rule(r#"{"allow":false}"#).v1_string(), "a");
        let r = rule(r#"{"allow":true,"type":"b","major":8,"minor":1,"access":"rw"}"#);
        assert_eq!(v1_line_rule(&format!("allow {}", r.v1_string())), r);
        for bad in [
            r#"{"allow":true,"type":"p"}"#,
            r#"{"allow":true,"access":"rx"}"#,
            r#"{"allow":true,"type":"c","major":-2}"#,
        ] {
            let r: LinuxDeviceCgroup = serde_json::from_str(bad).unwrap();
            assert!(parse_rules(&[r]).is_err(), "{bad}");
        }
    }

    #[test]
    fn program_agrees_with_the_model_on_random_rule_lists() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..400 {
            let rules: Vec<Rule> = (0..rnd(7))
                .map(|_| Rule {
                    allow: rnd(2) == 0,
                    kind: [None, Some(DEV_CHAR), Some(DEV_BLOCK), Some(DEV_CHAR)][rnd(4) as usize],
                    major: [None, Some(1), Some(5)][rnd(3) as usize],
                    minor: [None, Some(3), Some(0)][rnd(3) as usize],
                    access: 1 + rnd(7) as i32,
                })
                .collect();
            let prog = program(&rules);
            for kind in [DEV_CHAR, DEV_BLOCK] {
                for (major, minor) in [(1, 3), (1, 0), (5, 3), (7, 7)] {
                    for access in 1..=ACC_ALL {
                        let got = run(&prog, kind, major, minor, access) == 1;
                        assert_eq!(
                            got,
                            model(&rules, kind, major, minor, access),
                            "{rules:?} {kind} {major}:{minor} {access}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_accepts_the_program() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","access":"m"},{"allow":false,"type":"c","major":1,"minor":3,"access":"w"},
                {"allow":true,"type":"b","major":8,"access":"r"}]"#,
        )
        .unwrap();
        match load(&program(&parse_rules(&rules).unwrap())) {
            Ok(_) => {}
            // not root / no bpf in this sandbox: the encoding tests above still ran
            Err(Error::Bpf { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}
