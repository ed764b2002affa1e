//! This machine as the process rows describe it: its name, where a pid names a process, and
//! whether a pid still runs. Reads `/proc` on Linux; elsewhere it cannot tell, and only the
//! heartbeat decides. Imports nothing of ours.

/// The machine's name, for people reading the `processes` table and the logs.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Where a pid names one process we can see: the boot (a random id the kernel draws at every
/// boot, so two machines, or one machine before and after a reboot, never share it), the pid
/// namespace (each container has its own, and two containers sharing the host's hostname
/// would otherwise mistake each other's pids) and the user (with `/proc` mounted `hidepid`,
/// another user's processes look gone). `None` when any is unreadable.
pub fn pid_scope() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    Some(format!(
        "linux:{}:{}:uid {}",
        boot.trim(),
        namespace.to_string_lossy(),
        uids.split_whitespace().collect::<Vec<_>>().join(",")
    ))
}

/// Whether `pid` runs in our pid namespace: `Some(false)` when it does not exist or has
/// exited and waits to be reaped (a zombie sends nothing), `None` when we cannot tell.
pub fn pid_running(pid: i64) -> Option<bool> {
    if pid <= 0 || !std::path::Path::new("/proc/self/stat").exists() {
        return None;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => Some(!matches!(process_state(&stat), Some('Z' | 'X'))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

/// The state letter of `/proc/<pid>/stat`: the field after the command name, which is in
/// parentheses and may itself contain spaces and parentheses.
fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_read_past_a_command_name_with_parentheses() {
        assert_eq!(process_state("42 (switchboard) S 1 42 42"), Some('S'));
        assert_eq!(process_state("42 (a) b) (c) Z 1 42"), Some('Z'));
        assert_eq!(process_state("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_own_pid_runs_and_a_reaped_child_does_not() {
        assert_eq!(pid_running(i64::from(std::process::id())), Some(true));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i64::from(child.id());
        child.wait().unwrap();
        assert_eq!(pid_running(pid), Some(false));
        assert!(pid_scope().is_some_and(|s| s.starts_with("linux:")));
    }
}
