use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use super::devices_bpf::Insn;

pub(crate) trait Kernel {
    fn mkdir(&self, _dir: &Path) {}
    fn rmdir(&self, dir: &Path) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    /// `Some(result)` when the fake kernel handled the write itself.
    fn write(&self, _file: &Path, _value: &str) -> Option<io::Result<()>> {
        None
    }
    /// `true` when the fake kernel took the device program.
    fn bpf(&self, _dir: &Path, _prog: &[Insn]) -> bool {
        false
    }
}

thread_local!(static KERNEL: RefCell<Option<Rc<dyn Kernel>>> = RefCell::new(None));

pub(crate) struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        KERNEL.with(|k| *k.borrow_mut() = None);
    }
}

pub(crate) fn install(k: Rc<dyn Kernel>) -> Installed {
    KERNEL.with(|slot| *slot.borrow_mut() = Some(k));
    Installed
}

pub(crate) fn with<R>(f: impl FnOnce(&dyn Kernel) -> R) -> Option<R> {
    let k = KERNEL.with(|k| k.borrow().clone())?;
    Some(f(&*k))
}
