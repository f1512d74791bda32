//! Firmware images: what the vendor's Ed25519 signature covers, and its check. The gateway checks
//! an image at upload, and a locker checks it again before installing it (PROTOCOL.md §11).
//!
//! The signed message is the image's **manifest**, not the image itself, so that a device can
//! check the signature before it has the image and then check the image against the hash:
//!
//! ```text
//! "LKFW" 0x01 | size: u32 big-endian | sha256(image): 32 bytes | version: 1..=32 printable ASCII
//! ```

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The manifest's first bytes: its name and format version.
pub const MANIFEST_MAGIC: &[u8; 5] = b"LKFW\x01";

/// Why an image's manifest cannot be signed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The version is not 1 to 32 printable ASCII characters.
    #[error("the version must be 1 to 32 printable ASCII characters")]
    BadVersion,
    /// The image is empty or larger than a `u32` counts.
    #[error("the image must be 1 byte to 4 GiB")]
    BadSize,
    /// The signature is not 64 bytes, or the key not 32 bytes of a valid point.
    #[error("the signature or the key is malformed")]
    Malformed,
    /// The signature does not hold for this manifest and key.
    #[error("the signature does not match the image and version")]
    BadSignature,
}

/// The message a vendor signs for an image of `size` bytes with SHA-256 `sha256`, version
/// `version`.
pub fn manifest(version: &str, size: u64, sha256: &[u8; 32]) -> Result<Vec<u8>, ImageError> {
    if version.is_empty()
        || version.len() > 32
        || !version.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(ImageError::BadVersion);
    }
    let size = u32::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .ok_or(ImageError::BadSize)?;
    let mut message = Vec::with_capacity(5 + 4 + 32 + version.len());
    message.extend_from_slice(MANIFEST_MAGIC);
    message.extend_from_slice(&size.to_be_bytes());
    message.extend_from_slice(sha256);
    message.extend_from_slice(version.as_bytes());
    Ok(message)
}

/// Whether `key` is an Ed25519 public key (32 bytes of a valid point).
pub fn check_key(key: &[u8]) -> Result<(), ImageError> {
    let key: &[u8; 32] = key.try_into().map_err(|_| ImageError::Malformed)?;
    VerifyingKey::from_bytes(key)
        .map(drop)
        .map_err(|_| ImageError::Malformed)
}

/// The SHA-256 of `image`.
pub fn digest(image: &[u8]) -> [u8; 32] {
    Sha256::digest(image).into()
}

/// Checks `signature` (64 bytes) of `message` under the Ed25519 public key `key` (32 bytes),
/// strictly (RFC 8032 §5.1.7, no malleable signatures or small-order keys).
pub fn verify(key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), ImageError> {
    let key: &[u8; 32] = key.try_into().map_err(|_| ImageError::Malformed)?;
    let key = VerifyingKey::from_bytes(key).map_err(|_| ImageError::Malformed)?;
    let signature = Signature::from_slice(signature).map_err(|_| ImageError::Malformed)?;
    key.verify_strict(message, &signature)
        .map_err(|_| ImageError::BadSignature)?;
    // `verify` too: the same answer, kept to catch a library that loosened one of them.
    key.verify(message, &signature)
        .map_err(|_| ImageError::BadSignature)
}

/// Checks that `signature` signs `image` as version `version` under `key`.
pub fn verify_image(
    key: &[u8],
    version: &str,
    image: &[u8],
    signature: &[u8],
) -> Result<(), ImageError> {
    let message = manifest(version, image.len() as u64, &digest(image))?;
    verify(key, &message, signature)
}

/// RFC 8032 §7.1, TEST 1, TEST 2, TEST 3 and TEST SHA(abc): (public key, message, signature),
/// in hex (whitespace ignored); for the tests of this crate and of other implementations (the C
/// library's).
#[doc(hidden)]
pub const RFC8032_TEST_VECTORS: &[(&str, &str, &str)] = &[
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155
         5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da
         085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac
         18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589
         09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text.split_whitespace().collect::<String>()).expect("hex")
    }

    #[test]
    fn rfc_8032_vectors_verify_and_a_changed_bit_does_not() {
        for (key, message, signature) in RFC8032_TEST_VECTORS {
            let (key, message, signature) = (unhex(key), unhex(message), unhex(signature));
            assert_eq!(verify(&key, &message, &signature), Ok(()));
            let mut flipped = signature.clone();
            flipped[10] ^= 1;
            assert_eq!(
                verify(&key, &message, &flipped),
                Err(ImageError::BadSignature)
            );
            let mut other = message.clone();
            other.push(0);
            assert_eq!(
                verify(&key, &other, &signature),
                Err(ImageError::BadSignature)
            );
        }
    }

    #[test]
    fn malformed_keys_and_signatures_are_refused_not_panicked_on() {
        let (key, _, signature) = RFC8032_TEST_VECTORS[0];
        let (key, signature) = (unhex(key), unhex(signature));
        assert_eq!(
            verify(&key[..31], b"", &signature),
            Err(ImageError::Malformed)
        );
        assert_eq!(
            verify(&key, b"", &signature[..63]),
            Err(ImageError::Malformed)
        );
        assert!(verify(&[0xff; 32], b"", &signature).is_err());
        assert!(verify(&key, b"", &[0xff; 64]).is_err());
    }

    #[test]
    fn the_manifest_binds_size_hash_and_version() {
        let hash = [7u8; 32];
        let m = manifest("1.2.0", 16384, &hash).expect("manifest");
        assert_eq!(&m[..5], b"LKFW\x01");
        assert_eq!(&m[5..9], &[0, 0, 0x40, 0]);
        assert_eq!(&m[9..41], &hash);
        assert_eq!(&m[41..], b"1.2.0");
        assert_eq!(manifest("", 1, &hash), Err(ImageError::BadVersion));
        assert_eq!(manifest("1.0\n", 1, &hash), Err(ImageError::BadVersion));
        assert_eq!(
            manifest(&"9".repeat(33), 1, &hash),
            Err(ImageError::BadVersion)
        );
        assert_eq!(manifest("1", 0, &hash), Err(ImageError::BadSize));
        assert_eq!(manifest("1", 1 << 32, &hash), Err(ImageError::BadSize));
    }
}
