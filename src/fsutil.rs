//! Crash-safe file writes shared by every stage that leaves files behind (bench results,
//! job results, the publish outbox). A file is either its old version or its new one, never
//! half of either: write a temporary file in the same directory, flush it to disk, rename it
//! over the target, then flush the directory so the rename itself survives a power cut.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically (temp file + fsync + rename + directory fsync).
/// Creates the parent directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    staged(path, bytes)?.persist(path).map_err(|e| e.error)?;
    sync_dir(path)
}

/// Like [`write_atomic`], but only if `path` does not exist yet: returns `false` and leaves
/// the existing file untouched when it does, so two writers racing for a name cannot both win.
pub fn create_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    match staged(path, bytes)?.persist_noclobber(path) {
        Ok(_) => sync_dir(path).map(|()| true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn staged(path: &Path, bytes: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = parent(path);
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    // Results are shared (uploaded as artifacts, read by other users): not tempfile's 0600.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    // Every file this program writes passes here: no configured secret reaches one.
    tmp.write_all(&crate::secrets::redact_bytes(bytes))?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// fsync the directory holding `path`, so a rename or unlink in it survives a power cut.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(parent(path))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_refuse_to_clobber() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!create_atomic(&p, b"three").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(create_atomic(&d.path().join("b"), b"x").unwrap());
        let leftovers: Vec<_> = std::fs::read_dir(d.path().join("sub")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }
}
