//! The only source of randomness in kmsd: the operating system's RNG.

/// Fills `buf` from the operating system's RNG.
pub fn fill(buf: &mut [u8]) -> Result<(), super::Error> {
    getrandom::fill(buf).map_err(|_| super::Error::Rng)
}

/// `N` random bytes that are not secret (salts, nonces, identifiers).
pub fn array<const N: usize>() -> Result<[u8; N], super::Error> {
    let mut b = [0u8; N];
    fill(&mut b)?;
    Ok(b)
}
