//! Files that hold secrets (the operator token, the generated master key file).

use std::io::Write;
use std::path::Path;

/// Writes `contents` to a file only its owner can read (0600), replacing any older file and
/// tightening its mode if it was created wider.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        write_all(file, contents)
    }
    #[cfg(not(unix))]
    write_all(options.open(path)?, contents)
}

fn write_all(mut file: std::fs::File, contents: &str) -> std::io::Result<()> {
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
