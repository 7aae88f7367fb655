//! Content hashes (plan identity, idempotency tokens, write receipts), JSON sizes and error
//! chains in words.

use sha2::{Digest, Sha256};

/// The lowercase hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The compact-JSON size of `value`, counted without building the text.
pub(crate) fn json_size(value: &impl serde::Serialize) -> usize {
    let mut count = Counted::new(std::io::sink());
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.bytes
}

/// The compact-JSON size of `value` if it is at most `limit` bytes, counted without building
/// the text; counting stops as soon as it passes `limit`.
pub(crate) fn json_size_within(value: &impl serde::Serialize, limit: usize) -> Option<usize> {
    let mut count = Counted::at_most(std::io::sink(), limit);
    serde_json::to_writer(&mut count, value).ok()?;
    Some(count.bytes)
}

/// Counts the bytes written through to `inner`, refusing any write that would pass `limit`.
pub(crate) struct Counted<W> {
    inner: W,
    /// Written so far.
    pub(crate) bytes: usize,
    limit: usize,
}

impl<W> Counted<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self::at_most(inner, usize::MAX)
    }

    pub(crate) fn at_most(inner: W, limit: usize) -> Self {
        Counted {
            inner,
            bytes: 0,
            limit,
        }
    }
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.limit - self.bytes {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        let n = self.inner.write(buf)?;
        self.bytes += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An error and its causes in words: each cause's message after a `: `, leaving out one that
/// the message before it already says (SDK errors often repeat their cause). Unlike the AWS
/// SDK's own `DisplayErrorContext`, no debug dump of the error's internals is appended: it is
/// unreadable in a log line, and holds request details that are not the user's concern.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !words.is_empty() && !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn error_chains_are_words_without_debug_dumps() {
        let err = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "other",
                Some(Box::new(Layer(
                    "an error occurred while loading credentials",
                    Some(Box::new(Layer(
                        "an error occurred while loading credentials",
                        None,
                    ))),
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "dispatch failure: other: an error occurred while loading credentials"
        );
    }
}
