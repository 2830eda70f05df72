//! Content digests: [`DigestAlgorithm`], [`Digest`] and their errors.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm that go-digest registers (all hex-encoded, lowercase).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) enum DigestAlgorithm {
    /// `sha256`, 64 hex digits.
    Sha256,
    /// `sha384`, 96 hex digits.
    Sha384,
    /// `sha512`, 128 hex digits.
    Sha512,
}

impl DigestAlgorithm {
    /// Every supported algorithm.
    pub(crate) const ALL: [Self; 3] = [Self::Sha256, Self::Sha384, Self::Sha512];

    /// The name before the `:`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// How many hex digits its digests have.
    pub(crate) fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha384 => 96,
            Self::Sha512 => 128,
        }
    }

    /// The digest of `bytes` in this algorithm.
    pub(crate) fn digest(self, bytes: &[u8]) -> Digest {
        let hex = match self {
            Self::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Self::Sha384 => hex::encode(sha2::Sha384::digest(bytes)),
            Self::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest(format!("{}:{hex}", self.as_str()))
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A content digest, `ALGORITHM:HEX` (`sha256:<64 lowercase hex>`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Digest(pub(super) String);

/// Why a string is not a supported digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DigestError {
    /// No `:` between algorithm and hex.
    #[error("digest `{digest}` has no algorithm; expected sha256:<64 lowercase hex digits>")]
    NoAlgorithm {
        /// The text given.
        digest: String,
    },
    /// An algorithm other than sha256, sha384 and sha512.
    #[error(
        "digest `{digest}`: algorithm `{algorithm}` is not supported; use sha256, sha384 or sha512"
    )]
    Algorithm {
        /// The text given.
        digest: String,
        /// The part before the `:`.
        algorithm: String,
    },
    /// The hex part has the wrong length or characters.
    #[error(
        "digest `{digest}` is invalid: a {algorithm} digest has exactly {len} lowercase hex digits (0-9, a-f)"
    )]
    Hex {
        /// The text given.
        digest: String,
        /// Its algorithm.
        algorithm: DigestAlgorithm,
        /// The number of hex digits it needs.
        len: usize,
    },
}

/// Content whose digest is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the content hashes to {actual}, not {expected}")]
pub(crate) struct DigestMismatch {
    /// The digest checked against.
    pub expected: Digest,
    /// The digest of the content, in the same algorithm.
    pub actual: Digest,
}

impl Digest {
    /// Parses `ALGORITHM:HEX` for a supported algorithm.
    pub(crate) fn parse(text: &str) -> Result<Self, DigestError> {
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(DigestError::NoAlgorithm {
                digest: text.to_owned(),
            });
        };
        let Some(alg) = DigestAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == algorithm)
        else {
            return Err(DigestError::Algorithm {
                digest: text.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        };
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hex.len() == alg.hex_len() && hex.bytes().all(lower_hex) {
            Ok(Self(text.to_owned()))
        } else {
            Err(DigestError::Hex {
                digest: text.to_owned(),
                algorithm: alg,
                len: alg.hex_len(),
            })
        }
    }

    /// The sha256 digest of `bytes`.
    pub(crate) fn sha256_of(bytes: &[u8]) -> Self {
        DigestAlgorithm::Sha256.digest(bytes)
    }

    /// Its algorithm.
    pub(crate) fn algorithm(&self) -> DigestAlgorithm {
        let name = self.0.split_once(':').map_or("", |(a, _)| a);
        DigestAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .unwrap_or(DigestAlgorithm::Sha256)
    }

    /// The hex part, after the `:`.
    #[cfg(test)]
    pub(crate) fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, hex)| hex)
    }

    /// Checks that `bytes` hash to this digest.
    pub(crate) fn verify(&self, bytes: &[u8]) -> Result<(), DigestMismatch> {
        let actual = self.algorithm().digest(bytes);
        if actual == *self {
            Ok(())
        } else {
            Err(DigestMismatch {
                expected: self.clone(),
                actual,
            })
        }
    }
}

text_type!(Digest, DigestError, |d| &d.0);
