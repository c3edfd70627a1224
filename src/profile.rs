//! Profiles: where a client finds its endpoint and credentials. The file is
//! the INI that `kmsd dev` writes (`[default]`, `[operator]`, ...), each
//! section with `endpoint`, `account_id`, `access_key_id` and
//! `secret_access_key`.

use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

/// One resolved profile.
pub struct ClientProfile {
    /// The gRPC endpoint.
    pub endpoint: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// A session token for temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
    /// The CA certificate (PEM file) to trust for an `https://` endpoint.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ClientProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProfile")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a profile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read or parsed.
    #[error("cannot read credentials file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No such section.
    #[error("profile [{profile}] is not in {path}")]
    NoProfile {
        /// The section.
        profile: String,
        /// The file.
        path: PathBuf,
    },
    /// The name cannot be a profile's ([`is_valid_name`]).
    #[error("{0:?} cannot be a profile name: use 1 to 64 letters, digits and - _ . @")]
    BadName(String),
    /// A required field is missing.
    #[error("profile [{profile}] in {path} has no {field}")]
    Missing {
        /// The section.
        profile: String,
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
    },
}

/// Whether `name` can name a profile: 1 to 64 ASCII letters, digits and
/// `-_.@`. A bracket or a line break in a section name would break the
/// credentials file for every profile in it.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// A parsed credentials file whose values (every profile's secret among
/// them) are wiped when it is dropped; it is read from a zeroizing buffer.
struct Scrubbed(ini::Ini);

impl Scrubbed {
    fn load(path: &Path) -> Result<Self, String> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| e.to_string())?);
        // As `Ini::load_from_file` does: an editor's byte-order mark is not
        // part of the first line.
        let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
        ini::Ini::load_from_str(body)
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

impl Drop for Scrubbed {
    fn drop(&mut self) {
        for (_, section) in self.0.iter_mut() {
            wipe(section);
        }
    }
}

/// Zeroizes every value of a section in place.
fn wipe(section: &mut ini::Properties) {
    for (_, value) in section.iter_mut() {
        value.zeroize();
    }
}

/// Reads `profile` from the INI file at `path`.
pub fn load(path: &Path, profile: &str) -> Result<ClientProfile, ProfileError> {
    let ini = Scrubbed::load(path).map_err(|reason| ProfileError::File {
        path: path.to_owned(),
        reason,
    })?;
    let section = ini
        .0
        .section(Some(profile))
        .ok_or_else(|| ProfileError::NoProfile {
            profile: profile.to_owned(),
            path: path.to_owned(),
        })?;
    let get = |field: &'static str| {
        section
            .get(field)
            .map(str::to_owned)
            .ok_or_else(|| ProfileError::Missing {
                profile: profile.to_owned(),
                path: path.to_owned(),
                field,
            })
    };
    Ok(ClientProfile {
        endpoint: get("endpoint")?,
        access_key_id: get("access_key_id")?,
        secret_access_key: Zeroizing::new(get("secret_access_key")?),
        session_token: section
            .get("session_token")
            .map(|t| Zeroizing::new(t.to_owned())),
        ca_file: section.get("ca_file").map(PathBuf::from),
    })
}

/// Adds or replaces the section `name` of the INI file at `path` (created
/// with mode 0600 if missing; replaced atomically).
pub fn save(path: &Path, name: &str, fields: &[(&str, &str)]) -> Result<(), ProfileError> {
    save_sections(path, &[(name, fields)])
}

/// Adds or replaces several sections at once, keeping every other section
/// of the file (profiles saved by `kmsctl --save-profile` survive a
/// restart of `kmsd dev`).
pub fn save_sections(
    path: &Path,
    sections: &[(&str, &[(&str, &str)])],
) -> Result<(), ProfileError> {
    if let Some((name, _)) = sections.iter().find(|(n, _)| !is_valid_name(n)) {
        return Err(ProfileError::BadName((*name).to_owned()));
    }
    let err = |reason: String| ProfileError::File {
        path: path.to_owned(),
        reason,
    };
    let mut ini = if path.exists() {
        Scrubbed::load(path).map_err(err)?
    } else {
        Scrubbed(ini::Ini::new())
    };
    for (name, fields) in sections {
        // Every copy of the section (a hand-edited file may repeat it) is
        // wiped before it goes.
        ini.0.section_all_mut(Some(*name)).for_each(wipe);
        ini.0.delete(Some(*name));
        for (k, v) in *fields {
            ini.0.with_section(Some(*name)).set(*k, *v);
        }
    }
    let mut text = Vec::new();
    // `key = value`, as `kmsd dev` has always written the file.
    let opt = ini::WriteOption {
        kv_separator: " = ",
        ..Default::default()
    };
    ini.0
        .write_to_opt(&mut text, opt)
        .map_err(|e| err(e.to_string()))?;
    let text = Zeroizing::new(text);
    crate::private_file::write_atomic(path, &text).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from a zeroizing buffer rather than by the INI crate, the file
    /// still loads as before, byte-order mark and all, and a save keeps the
    /// other profiles.
    #[test]
    fn profiles_load_and_save_through_the_scrubbed_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "\u{feff}[default]\nendpoint = http://127.0.0.1:1\naccess_key_id = AKIAEXAMPLE\nsecret_access_key = s3cr=t\n",
        )
        .unwrap();
        let p = load(&path, "default").unwrap();
        assert_eq!(p.endpoint, "http://127.0.0.1:1");
        assert_eq!(p.secret_access_key.as_str(), "s3cr=t");
        save(
            &path,
            "other",
            &[
                ("endpoint", "http://127.0.0.1:2"),
                ("access_key_id", "AKIAOTHER"),
                ("secret_access_key", "x"),
            ],
        )
        .unwrap();
        assert_eq!(
            load(&path, "default").unwrap().secret_access_key.as_str(),
            "s3cr=t"
        );
        assert_eq!(load(&path, "other").unwrap().endpoint, "http://127.0.0.1:2");

        // A section repeated by hand is replaced whole, every copy of it.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("[other]\nsecret_access_key = stale\n");
        std::fs::write(&path, text).unwrap();
        save(
            &path,
            "other",
            &[
                ("endpoint", "http://127.0.0.1:3"),
                ("access_key_id", "AKIAOTHER"),
                ("secret_access_key", "fresh"),
            ],
        )
        .unwrap();
        let saved = std::fs::read_to_string(&path).unwrap();
        assert_eq!(saved.matches("[other]").count(), 1, "{saved}");
        assert!(!saved.contains("stale"), "{saved}");
        assert_eq!(
            load(&path, "other").unwrap().secret_access_key.as_str(),
            "fresh"
        );
    }

    #[test]
    fn profile_names_that_would_break_the_file_are_refused() {
        for good in ["default", "team-a", "ci_bot.prod", "alice@example", "x"] {
            assert!(is_valid_name(good), "{good}");
        }
        let long = "p".repeat(65);
        for bad in ["", "bad]name", "[x", "a\nb", "a b", "é", long.as_str()] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        save(&path, "ok", &[("endpoint", "http://127.0.0.1:1")]).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(
            save(&path, "bad]name", &[("endpoint", "x")]),
            Err(ProfileError::BadName(_))
        ));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the file is untouched"
        );
    }
}
