//! The ext4 "top of directory hierarchy" flag (`chattr +T`).
//!
//! ext4's Orlov allocator places a new directory's inodes in its parent's
//! block group unless the parent is the filesystem root or carries
//! `FS_TOPDIR_FL`; new files follow their directory. A store's layer
//! staging dirs and container dirs are independent trees created under one
//! parent, so without the flag every pull packs its inodes into the group
//! where the previous, just deleted, layers were. ext4 then scans past each
//! recently deleted inode on every allocation (`find_inode_bit` →
//! `recently_deleted`): unpacking the Debian minbase image into a store
//! made right after `rm -rf` of the last one took 4.3 s of system CPU here,
//! 0.3 s with the flag (measured, see bench/RESULTS.md). With the flag each
//! child directory is spread to a group with free inodes, which is what the
//! flag is for (`chattr(1)`: "the top of directory hierarchies for the
//! purposes of the Orlov block allocator").
//!
//! Filesystems without the flag (tmpfs, xfs, btrfs, ...) refuse or ignore
//! it; that is not an error.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `FS_TOPDIR_FL` from linux/fs.h (not in the libc crate).
pub const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// The inode flags of `dir` (`FS_IOC_GETFLAGS`).
pub fn flags(dir: &Path) -> io::Result<libc::c_int> {
    let f = File::open(dir)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel's ABI, despite the
    // `long` in the macro) into `flags`, which outlives the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}

/// Sets `FS_TOPDIR_FL` on `dir` unless it is set. Returns whether the flag is
/// set afterwards; false where the filesystem has no such flag.
pub fn mark(dir: &Path) -> bool {
    let Ok(f) = File::open(dir) else {
        return false;
    };
    let mut flags: libc::c_int = 0;
    // SAFETY: as in `flags`.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } < 0 {
        return false;
    }
    if flags & FS_TOPDIR_FL != 0 {
        return true;
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from `flags`.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) == 0 }
}

/// Whether `p` is on ext4 (where the flag exists), for tests.
#[cfg(test)]
pub(crate) fn on_ext4(p: &Path) -> bool {
    const EXT4_SUPER_MAGIC: i64 = 0xEF53;
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type().0 == EXT4_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_a_directory_on_ext4_and_is_idempotent() {
        // /var/tmp rather than /tmp: /tmp may be a tmpfs.
        let tmp = tempfile::Builder::new()
            .prefix("berth-topdir-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = tmp.path().join("layers");
        std::fs::create_dir(&d).unwrap();
        if !on_ext4(&d) {
            eprintln!("skipped: /var/tmp is not ext4");
            return;
        }
        assert_eq!(flags(&d).unwrap() & FS_TOPDIR_FL, 0);
        assert!(mark(&d));
        assert_ne!(flags(&d).unwrap() & FS_TOPDIR_FL, 0);
        assert!(mark(&d), "a second mark keeps the flag");
        assert_ne!(flags(&d).unwrap() & FS_TOPDIR_FL, 0);
    }

    #[test]
    fn a_filesystem_without_the_flag_is_not_an_error() {
        // /proc has no inode flags at all.
        assert!(!mark(Path::new("/proc/self")));
        assert!(!mark(Path::new("/nonexistent/berth-topdir")));
    }
}
