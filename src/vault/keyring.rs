//! Master keys (key-encryption keys): where they come from, how they are parsed, and the
//! generated key file of the embedded default. Key material never appears in an error, a
//! log line or `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Bytes in a master key (AES-256).
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{source_name}: {reason}")]
    Invalid { source_name: String, reason: String },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "PostgreSQL needs a configured master key: set SWITCHBOARD_MASTER_KEYS (id:base64, from `switchboard keys generate`) or SWITCHBOARD_MASTER_KEYS_FILE"
    )]
    NotConfigured,
}

/// A master key. Zeroed when dropped.
#[derive(Clone)]
pub struct MasterKey {
    pub id: String,
    pub(super) material: Zeroizing<[u8; KEY_LEN]>,
}

impl MasterKey {
    pub fn generate(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            material: Zeroizing::new(rand::random()),
        }
    }

    /// The `id:base64` form used in configuration.
    pub fn to_config_entry(&self) -> SecretString {
        SecretString::from(format!("{}:{}", self.id, STANDARD.encode(*self.material)))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, [REDACTED])", self.id)
    }
}

/// Where the master keys are configured.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `SWITCHBOARD_MASTER_KEYS`: fixed for the life of the process.
    Inline(SecretString),
    /// `SWITCHBOARD_MASTER_KEYS_FILE`, or the generated file of the embedded default; read
    /// again when it changes, so `switchboard keys rotate` reaches a running service.
    File { path: PathBuf, generated: bool },
    /// Nothing configured on PostgreSQL: refused at start.
    Missing,
}

pub fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses `id:base64` entries separated by commas or new lines (`#` starts a comment). The
/// first entry is the active key.
pub fn parse_keys(text: &str, source_name: &str) -> Result<Vec<MasterKey>, KeyringError> {
    let invalid = |reason: String| KeyringError::Invalid {
        source_name: source_name.to_owned(),
        reason,
    };
    let mut keys: Vec<MasterKey> = Vec::new();
    // Comments end at the line's end, so strip them before splitting lines at commas.
    let entries = text
        .lines()
        .flat_map(|line| line.split('#').next().unwrap_or_default().split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    for (index, entry) in entries.enumerate() {
        let n = index + 1;
        let (id, encoded) = entry
            .split_once(':')
            .ok_or_else(|| invalid(format!("entry {n} is not of the form id:base64")))?;
        let id = id.trim();
        if !valid_key_id(id) {
            return Err(invalid(format!(
                "entry {n}: a key id is 1 to 32 letters, digits, - or _"
            )));
        }
        let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
            invalid(format!(
                "entry {n} (id `{id}`): the key is not valid base64"
            ))
        })?);
        let material: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            invalid(format!(
                "entry {n} (id `{id}`): a key must be {KEY_LEN} bytes, this one has {}; use `switchboard keys generate`",
                bytes.len()
            ))
        })?;
        if keys.iter().any(|k| k.id == id) {
            return Err(invalid(format!("key id `{id}` appears twice")));
        }
        keys.push(MasterKey {
            id: id.to_owned(),
            material: Zeroizing::new(material),
        });
    }
    if keys.is_empty() {
        return Err(invalid("no key configured".into()));
    }
    Ok(keys)
}

/// The loaded keys, the first one active.
pub struct KeyRing {
    keys: Vec<MasterKey>,
    source: KeySource,
    loaded_mtime: Option<SystemTime>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids())
            .field("source", &self.source)
            .finish()
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl KeyRing {
    /// Loads the keys; for the embedded default, creates the key file on first start.
    pub fn load(source: KeySource) -> Result<Self, KeyringError> {
        match &source {
            KeySource::Missing => Err(KeyringError::NotConfigured),
            KeySource::Inline(text) => Ok(Self {
                keys: parse_keys(text.expose_secret(), "SWITCHBOARD_MASTER_KEYS")?,
                source,
                loaded_mtime: None,
            }),
            KeySource::File { path, generated } => {
                if *generated && !path.exists() {
                    write_key_file(path, &[MasterKey::generate("k1")])?;
                }
                let keys = read_key_file(path)?;
                let loaded_mtime = mtime(path);
                Ok(Self {
                    keys,
                    source,
                    loaded_mtime,
                })
            }
        }
    }

    pub fn active(&self) -> &MasterKey {
        &self.keys[0]
    }

    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Re-reads a key file that changed since it was loaded. `Ok(false)` when nothing changed
    /// or the keys are not file-based.
    pub fn refresh(&mut self) -> Result<bool, KeyringError> {
        let KeySource::File { path, .. } = &self.source else {
            return Ok(false);
        };
        let now = mtime(path);
        if now == self.loaded_mtime {
            return Ok(false);
        }
        self.keys = read_key_file(path)?;
        self.loaded_mtime = now;
        Ok(true)
    }
}

fn read_key_file(path: &Path) -> Result<Vec<MasterKey>, KeyringError> {
    let file_error = |reason: String| KeyringError::File {
        path: path.to_owned(),
        reason,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| file_error(format!("cannot read the master key file: {e}")))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(file_error(format!(
                "the master key file is readable by others (mode {:o}); run `chmod 600 {}`",
                mode & 0o777,
                path.display()
            )));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| file_error(format!("cannot read the master key file: {e}")))?,
    );
    parse_keys(&text, &path.display().to_string())
}

/// Writes keys to a 0600 file, first key first, replacing it atomically (write + rename) so
/// a running service never reads half a file.
pub fn write_key_file(path: &Path, keys: &[MasterKey]) -> Result<(), KeyringError> {
    let mut text = Zeroizing::new(String::from(
        "# Switchboard master keys, one id:base64 per line; the first is active.\n",
    ));
    for key in keys {
        text.push_str(key.to_config_entry().expose_secret());
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    super::files::write_private_file(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| KeyringError::File {
            path: path.to_owned(),
            reason: format!("cannot write the master key file: {e}"),
        })
}

/// The next free id of the form `k<n>`.
pub fn next_key_id(existing: &[String]) -> String {
    let highest = existing
        .iter()
        .filter_map(|id| id.strip_prefix('k')?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("k{}", highest + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> String {
        MasterKey::generate(id)
            .to_config_entry()
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn the_first_key_is_active_and_comments_are_ignored() {
        let text = format!(
            "# rotated 2026-11\n{}\n\n{} # old\n",
            entry("k2"),
            entry("k1")
        );
        let keys = parse_keys(&text, "test").unwrap();
        assert_eq!(
            keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            ["k2", "k1"]
        );
        let inline = parse_keys(&format!("{},{}", entry("a"), entry("b")), "env").unwrap();
        assert_eq!(inline[0].id, "a");
    }

    #[test]
    fn bad_entries_are_explained_without_showing_key_material() {
        let short = format!("k1:{}", STANDARD.encode([7u8; 16]));
        for (text, needle) in [
            ("k1", "not of the form"),
            ("k 1:AAAA", "key id"),
            ("k1:not base64!", "not valid base64"),
            (short.as_str(), "must be 32 bytes, this one has 16"),
            ("", "no key configured"),
        ] {
            let err = parse_keys(text, "SWITCHBOARD_MASTER_KEYS")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.starts_with("SWITCHBOARD_MASTER_KEYS"), "{err}");
        }
        let secret = entry("k1");
        let twice = format!("{secret},{secret}");
        let err = parse_keys(&twice, "env").unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        assert!(!err.contains(secret.split(':').nth(1).unwrap()), "{err}");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = MasterKey::generate("k1");
        let encoded = STANDARD.encode(*key.material);
        assert!(!format!("{key:?}").contains(&encoded));
    }

    #[test]
    fn the_generated_file_is_private_and_reloaded_when_it_changes() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("master-keys");
        let mut ring = KeyRing::load(KeySource::File {
            path: path.clone(),
            generated: true,
        })
        .unwrap();
        assert_eq!(ring.active().id, "k1");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(!ring.refresh().unwrap());
        let mut keys = vec![MasterKey::generate("k2")];
        keys.push(ring.active().clone());
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_key_file(&path, &keys).unwrap();
        assert!(ring.refresh().unwrap());
        assert_eq!(ring.ids(), ["k2", "k1"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("keys");
        write_key_file(&path, &[MasterKey::generate("k1")]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyRing::load(KeySource::File {
            path,
            generated: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn new_ids_follow_the_highest_number() {
        assert_eq!(
            next_key_id(&["k1".into(), "k7".into(), "prod".into()]),
            "k8"
        );
        assert_eq!(next_key_id(&["prod".into()]), "k1");
    }
}
