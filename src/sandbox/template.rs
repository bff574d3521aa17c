//! The cached template data directory.
//!
//! `mariadb-install-db` takes about 1.7 s; starting `mariadbd` on a copy of
//! an installed data directory takes about 0.1 s. So the system tables are
//! installed once per MariaDB version and user into
//! `$TMPDIR/parapply-sandbox-template-<revision>-<version>-uid<uid>/data` and
//! every server starts from a copy. The template is built in a private
//! staging directory and renamed into place, so concurrent test processes
//! either see a complete template or none; it is never modified afterwards.
//! Deleting it is always safe: the next start rebuilds it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::error::{Result, SandboxError};
use super::options::DEFAULT_INNODB_LOG_FILE_SIZE;
use super::process::{effective_uid, running_as_root};

/// Bump when the install options change, to stop using old templates.
const TEMPLATE_REVISION: u32 = 1;

/// The template of this process, once found or built. The lock also keeps
/// the threads of one process from building it twice at the same time.
static TEMPLATE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The template data directory: a pristine `mariadb-install-db` result with
/// a root user that logs in without a password.
pub(super) fn template_datadir(mariadbd: &Path, install_db: &Path) -> Result<PathBuf> {
    let mut cached = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(datadir) = cached.as_ref().filter(|d| d.join("mysql").is_dir()) {
        return Ok(datadir.clone());
    }
    let version = server_version(mariadbd)?;
    let name = format!(
        "parapply-sandbox-template-{TEMPLATE_REVISION}-{}-uid{}",
        sanitize(&version),
        effective_uid()
    );
    let parent = std::env::temp_dir();
    let home = parent.join(name);
    let datadir = home.join("data");
    if !datadir.join("mysql").is_dir() {
        build(install_db, &parent, &home)?;
    }
    // The temporary directory is shared: use only a template we created.
    let owner = fs::metadata(&home)
        .map_err(|e| SandboxError::io("stat", &home, e))?
        .uid();
    if owner != effective_uid() {
        return Err(SandboxError::io(
            "use the template (it belongs to another user)",
            &home,
            std::io::ErrorKind::PermissionDenied.into(),
        ));
    }
    *cached = Some(datadir.clone());
    Ok(datadir)
}

/// Installs the system tables into a staging directory next to `home`, then
/// renames it to `home`. Losing the race to another process is fine.
fn build(install_db: &Path, parent: &Path, home: &Path) -> Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(".parapply-sandbox-template-")
        .tempdir_in(parent)
        .map_err(|e| SandboxError::io("create a directory in", parent, e))?;
    let datadir = staging.path().join("data");
    let mut command = Command::new(install_db);
    command
        .arg("--no-defaults")
        .arg("--auth-root-authentication-method=normal")
        .arg(format!("--datadir={}", datadir.display()))
        .arg("--skip-test-db")
        .arg("--skip-name-resolve")
        .arg(format!(
            "--innodb-log-file-size={DEFAULT_INNODB_LOG_FILE_SIZE}"
        ))
        .arg("--innodb-buffer-pool-size=16777216")
        .stdin(Stdio::null());
    if running_as_root() {
        command.arg("--user=root");
    }
    let started = std::time::Instant::now();
    let output = command
        .output()
        .map_err(|e| SandboxError::io("run", install_db, e))?;
    if !output.status.success() {
        return Err(SandboxError::InstallDb {
            datadir,
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    tracing::debug!(elapsed = ?started.elapsed(), "installed the sandbox template");
    match fs::rename(staging.path(), home) {
        Ok(()) => {
            // Renamed away: nothing left for the TempDir to remove.
            let _ = staging.keep();
            Ok(())
        }
        // Another process renamed its template first; ours is removed.
        Err(_) if home.join("data").join("mysql").is_dir() => Ok(()),
        Err(e) => Err(SandboxError::io("rename the template to", home, e)),
    }
}

/// `10.11.19-MariaDB-0+deb12u1` from `mariadbd --version`.
fn server_version(mariadbd: &Path) -> Result<String> {
    let output = Command::new(mariadbd)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SandboxError::io("run", mariadbd, e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"
    let version = text
        .split_whitespace()
        .skip_while(|word| *word != "Ver")
        .nth(1)
        .unwrap_or("unknown");
    Ok(version.to_owned())
}

/// Keeps a version string usable as part of a file name.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Copies the directory tree `from` to `to` (which must not exist).
pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir(to).map_err(|e| SandboxError::io("create directory", to, e))?;
    let entries = fs::read_dir(from).map_err(|e| SandboxError::io("list", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SandboxError::io("list", from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| SandboxError::io("stat", &source, e))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else {
            fs::copy(&source, &target).map_err(|e| SandboxError::io("copy", &source, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_version_characters() {
        assert_eq!(
            sanitize("10.11.19-MariaDB-0+deb12u1"),
            "10.11.19-MariaDB-0+deb12u1"
        );
        assert_eq!(sanitize("a/b c"), "a_b_c");
    }
}
