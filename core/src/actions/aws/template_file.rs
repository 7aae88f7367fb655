//! Reading an `aws.create_stack` `template_file`: bounded by CloudFormation's own size limits
//! (a device or a huge file is refused without reading it all) and kept beside the action file
//! (a path that leaves its folder, through `..` or a symlink, is refused unless allowed), so an
//! action file cannot smuggle other files of the machine into the stored plan.

use std::io::Read;
use std::path::{Path, PathBuf};

/// CloudFormation's limit for a template body sent in the request (`TemplateBody`).
pub const MAX_INLINE: u64 = 51_200;
/// CloudFormation's limit for a template it fetches from S3 (`TemplateURL`): 1 MB.
pub const MAX_BY_URL: u64 = 1_048_576;

/// Which files may be read.
#[derive(Debug, Clone, Copy)]
pub enum Reach<'a> {
    /// Only files inside this folder, after following symlinks.
    Within(&'a Path),
    /// Any file (the operator allowed it explicitly).
    Anywhere,
}

/// A template file as read.
#[derive(Debug)]
pub struct TemplateFile {
    /// The file's canonical path (symlinks followed).
    pub path: PathBuf,
    /// Its bytes, at most the limit it was read with.
    pub bytes: Vec<u8>,
}

/// Why a template file was not read. The messages name the file and how to fix the problem;
/// callers add the action and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads `path` if `reach` allows it, it is a regular file and it holds at most `limit` bytes.
pub fn read(path: &Path, reach: Reach<'_>, limit: u64) -> Result<TemplateFile, Refused> {
    let shown = path.display();
    let canonical =
        std::fs::canonicalize(path).map_err(|e| Refused(format!("cannot read {shown}: {e}")))?;
    if let Reach::Within(folder) = reach {
        let folder = std::fs::canonicalize(folder)
            .map_err(|e| Refused(format!("cannot read {}: {e}", folder.display())))?;
        if !canonical.starts_with(&folder) {
            return Err(Refused(format!(
                "{shown} is outside {}, the action file's folder ({} once symlinks and '..' are \
                 followed); keep templates beside the action file, or pass \
                 --allow-template-outside to read it anyway",
                folder.display(),
                canonical.display()
            )));
        }
    }
    // Checked before opening: opening a FIFO would block, and a device never ends.
    let metadata =
        std::fs::metadata(&canonical).map_err(|e| Refused(format!("cannot read {shown}: {e}")))?;
    if !metadata.is_file() {
        return Err(Refused(format!(
            "{shown} is not a regular file; name a CloudFormation template file"
        )));
    }
    let file = std::fs::File::open(&canonical)
        .map_err(|e| Refused(format!("cannot read {shown}: {e}")))?;
    // Read one byte past the limit, never more: the size the file claims may be wrong (procfs).
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Refused(format!("cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Refused(too_big(&shown.to_string(), limit)));
    }
    Ok(TemplateFile {
        path: canonical,
        bytes,
    })
}

/// The message for a template over `limit`, naming CloudFormation's limits.
pub fn too_big(file: &str, limit: u64) -> String {
    if limit <= MAX_INLINE {
        format!(
            "{file} is larger than {MAX_INLINE} bytes, CloudFormation's limit for a template sent \
             inline; run with an S3 store (--store s3://…) so baton uploads it (CloudFormation \
             fetches up to 1 MB, {MAX_BY_URL} bytes, from S3), or use template_url"
        )
    } else {
        format!(
            "{file} is larger than 1 MB ({MAX_BY_URL} bytes), CloudFormation's limit for a \
             template fetched from S3 (inline: {MAX_INLINE} bytes); split the stack into nested \
             stacks"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_refused_without_reading_it() {
        let err = read(Path::new("/dev/zero"), Reach::Anywhere, MAX_BY_URL).expect_err("device");
        assert!(err.0.contains("not a regular file"), "{err}");
    }

    #[test]
    fn reading_stops_one_byte_past_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'x'; 60_000]).expect("write");
        let err = read(&path, Reach::Within(dir.path()), MAX_INLINE).expect_err("too big");
        assert!(err.0.contains("51200 bytes"), "{err}");
        let ok = read(&path, Reach::Within(dir.path()), MAX_BY_URL).expect("fits by URL");
        assert_eq!(ok.bytes.len(), 60_000);
    }
}
