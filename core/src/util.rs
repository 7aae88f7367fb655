//! Content hashes: plan identity, idempotency tokens, write receipts.

use sha2::{Digest, Sha256};

/// The lowercase hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
