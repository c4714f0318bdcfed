//! `pause` / `resume`: the cgroup freezer.

use super::{Error, Result, Runtime};
use crate::state::Status;

pub fn pause(rt: &Runtime, id: &str) -> Result<()> {
    let c = rt.load(id)?;
    if !matches!(c.status, Status::Running | Status::Created) {
        return Err(Error::WrongState {
            id: id.into(),
            status: c.status,
            what: "only a running container can be paused",
        });
    }
    super::cgroup_of(&c.rec)?.freeze()?;
    Ok(())
}

pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    let c = rt.load(id)?;
    if c.status != Status::Paused {
        return Err(Error::WrongState {
            id: id.into(),
            status: c.status,
            what: "container is not paused",
        });
    }
    super::cgroup_of(&c.rec)?.thaw()?;
    Ok(())
}
