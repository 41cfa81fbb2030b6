//! [`crate::fsutil`]'s crash-safe writes with the failing file named in a [`ReportError`],
//! plus the directory fsync a removal needs to be durable.

use super::ReportError;
use std::path::Path;

/// Write `bytes` to `path` atomically (temp file + fsync + rename + directory fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::fsutil::write_atomic(path, bytes).map_err(|e| ReportError::io(path, e))
}

/// Like [`write_atomic`] but only if `path` does not exist yet; returns `false` (and leaves
/// the existing file untouched) when it does.
pub fn create_atomic(path: &Path, bytes: &[u8]) -> Result<bool, ReportError> {
    crate::fsutil::create_atomic(path, bytes).map_err(|e| ReportError::io(path, e))
}

/// fsync the directory holding `path` so a rename or unlink in it is durable.
pub fn sync_dir(path: &Path) -> Result<(), ReportError> {
    crate::fsutil::sync_dir(path).map_err(|e| ReportError::io(path, e))
}
