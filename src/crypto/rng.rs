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

/// Two random (version 4) UUIDs from one OS RNG call: a request's id and
/// its audit event's id, at one system call per request instead of two.
pub fn uuid_pair() -> Result<(uuid::Uuid, uuid::Uuid), super::Error> {
    let b = array::<32>()?;
    let (first, second) = b.split_at(16);
    let make = |half: &[u8]| -> Result<uuid::Uuid, super::Error> {
        let bytes: [u8; 16] = half.try_into().map_err(|_| super::Error::Rng)?;
        Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
    };
    Ok((make(first)?, make(second)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_pairs_are_distinct_version_4_uuids() {
        let (a, b) = super::uuid_pair().unwrap();
        assert_ne!(a, b);
        for u in [a, b] {
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
        assert_ne!(super::uuid_pair().unwrap(), (a, b));
    }
}
