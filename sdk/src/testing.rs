//! Helpers for tests of code built on the SDK (feature `test-util`).

/// An unsigned JWT naming `sub` and expiring at `exp` (seconds since the
/// Unix epoch), shaped like a node's session tokens: for stand-in nodes that
/// read a token's claims without verifying it, and for the session's own
/// tests. A real node refuses it (its signature is not valid).
#[must_use]
pub fn unsigned_jwt(sub: &str, exp: u64) -> String {
    let claims = serde_json::json!({ "sub": sub, "exp": exp }).to_string();
    format!(
        "{}.{}.unsigned",
        base64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        base64url(claims.as_bytes())
    )
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
