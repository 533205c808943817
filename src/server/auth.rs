//! Password authentication: SCRAM-SHA-256 for the users the config file declares.
//!
//! The config file holds each user's SCRAM verifier in PostgreSQL's own format
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, what `pg_authid` stores
//! and what `tessera hash-password` prints), never the password: a leaked config file
//! does not reveal passwords, and verifiers copy over from PostgreSQL unchanged. pgwire
//! runs the SCRAM exchange; this module parses verifiers and answers which one a login
//! must match.
//!
//! An unknown user gets a made-up verifier rather than an immediate refusal, so the
//! exchange fails at the same step, with the same error, as a wrong password: the
//! server does not tell strangers which user names exist (PostgreSQL does the same).

use crate::error::{Error, Result};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use std::collections::HashMap;

/// SCRAM iterations for verifiers made by `tessera hash-password` (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Fewest iterations a verifier may declare (RFC 7677's minimum).
const MIN_ITERATIONS: u32 = 4096;
/// Most iterations accepted, so a hostile config cannot make every login take minutes.
const MAX_ITERATIONS: u32 = 10_000_000;
const SALT_BYTES: usize = 16;
const KEY_BYTES: usize = 32;

/// A user declared in the config file (`[[users]]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user name clients log in with.
    pub name: String,
    /// The SCRAM-SHA-256 verifier, as `tessera hash-password` prints it.
    pub password: String,
}

/// A parsed SCRAM-SHA-256 verifier: enough to check a client's proof, not to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs and panics.
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Parses PostgreSQL's verifier text; errors say what is wrong, never echo keys.
    pub fn parse(text: &str) -> Result<Verifier> {
        let invalid = |why: &str| {
            Error::InvalidParameterValue(format!(
                "invalid SCRAM-SHA-256 verifier ({why}); expected \
                 SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as printed by \
                 `tessera hash-password`"
            ))
        };
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or_else(|| invalid("it must start with SCRAM-SHA-256$"))?;
        let (parameters, keys) = rest
            .split_once('$')
            .ok_or_else(|| invalid("missing '$' before the keys"))?;
        let (iterations, salt) = parameters
            .split_once(':')
            .ok_or_else(|| invalid("missing ':' between iterations and salt"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or_else(|| invalid("missing ':' between the keys"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| invalid("the iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(invalid(&format!(
                "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
            )));
        }
        let decode = |what: &str, text: &str| {
            BASE64
                .decode(text)
                .map_err(|_| invalid(&format!("the {what} is not base64")))
        };
        let verifier = Verifier {
            iterations,
            salt: decode("salt", salt)?,
            stored_key: decode("stored key", stored_key)?,
            server_key: decode("server key", server_key)?,
        };
        if verifier.salt.is_empty()
            || verifier.stored_key.len() != KEY_BYTES
            || verifier.server_key.len() != KEY_BYTES
        {
            return Err(invalid("wrong salt or key length"));
        }
        Ok(verifier)
    }

    /// Derives the verifier of `password` with a fresh random salt.
    pub fn from_password(password: &str, iterations: u32) -> Result<Verifier> {
        let mut salt = vec![0; SALT_BYTES];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::Io("the system random number generator failed".into()))?;
        let salted = gen_salted_password(password, &salt, iterations as usize);
        Ok(Verifier::from_secret(
            ScramSecret::verifier_from_salted_password(salt, salted, iterations as usize),
        ))
    }

    fn from_secret(secret: ScramSecret) -> Verifier {
        match secret {
            ScramSecret::Verifier {
                salt,
                iterations,
                stored_key,
                server_key,
            } => Verifier {
                iterations: u32::try_from(iterations).unwrap_or(u32::MAX),
                salt,
                stored_key,
                server_key,
            },
            ScramSecret::SaltedPassword { .. } => {
                panic!("verifier_from_salted_password returned a salted password, not a verifier")
            }
        }
    }

    /// A verifier no password matches, for user names that do not exist.
    fn impossible() -> Verifier {
        let random = SystemRandom::new();
        let mut bytes = [0u8; SALT_BYTES + 2 * KEY_BYTES];
        // Should the generator fail, zero keys still match no password: a SCRAM proof
        // is an HMAC output, and the stored key is compared with a hash of it.
        let _ = random.fill(&mut bytes);
        Verifier {
            iterations: DEFAULT_ITERATIONS,
            salt: bytes[..SALT_BYTES].to_vec(),
            stored_key: bytes[SALT_BYTES..SALT_BYTES + KEY_BYTES].to_vec(),
            server_key: bytes[SALT_BYTES + KEY_BYTES..].to_vec(),
        }
    }

    fn secret(&self) -> ScramSecret {
        ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: self.iterations as usize,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key)
        )
    }
}

/// The users who may log in, by name.
#[derive(Debug)]
pub struct UserTable {
    users: HashMap<String, Verifier>,
    /// One made-up verifier per server run: the same salt for every unknown name, so
    /// probing two unknown names does not reveal that both are unknown by differing.
    unknown: Verifier,
}

impl UserTable {
    /// Parses every user's verifier; a bad one or a repeated name is an error.
    pub fn new(users: &[UserConfig]) -> Result<UserTable> {
        let mut table = HashMap::new();
        for user in users {
            if user.name.is_empty() {
                return Err(Error::InvalidParameterValue(
                    "a [[users]] entry has an empty name".into(),
                ));
            }
            let verifier = Verifier::parse(&user.password).map_err(|e| {
                Error::InvalidParameterValue(format!("user \"{}\": {e}", user.name))
            })?;
            if table.insert(user.name.clone(), verifier).is_some() {
                return Err(Error::InvalidParameterValue(format!(
                    "user \"{}\" is declared twice",
                    user.name
                )));
            }
        }
        Ok(UserTable {
            users: table,
            unknown: Verifier::impossible(),
        })
    }
}

#[async_trait]
impl AuthSource for UserTable {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        // Only SCRAM is offered, and it asks get_scram_secret; no password is ever
        // recoverable from a verifier.
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_string(),
        ))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().ok_or(PgWireError::UserNameRequired)?;
        let verifier = self.users.get(user).unwrap_or(&self.unknown);
        Ok((verifier.secret(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifier printed by hash-password parses back to itself.
    #[test]
    fn verifier_round_trips() {
        let verifier = Verifier::from_password("secret", DEFAULT_ITERATIONS).unwrap();
        let text = verifier.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"), "{text}");
        assert_eq!(Verifier::parse(&text).unwrap(), verifier);
        // Two hashes of one password differ: the salt is random.
        assert_ne!(Verifier::from_password("secret", 4096).unwrap(), verifier);
    }

    /// A verifier made by PostgreSQL 15 itself (`SET password_encryption = 'scram-sha-256';
    /// CREATE USER ... PASSWORD 'secret'`) parses, and its keys are the ones our
    /// derivation gives for that salt: the formats agree.
    #[test]
    fn postgres_verifier_matches_our_derivation() {
        let from_postgres = "SCRAM-SHA-256$4096:bIUiHSRG0/tuVwR6bgeWGQ==$lB7ZpAZRbr5u6jGgCQT7EKPDfoTJsqJ2z0Wo9MokDNk=:+N+gg6Z+UqeI0fdAayRooLevyxAX6txyc979JkntK+E=";
        let parsed = Verifier::parse(from_postgres).unwrap();
        let salted = gen_salted_password("secret", &parsed.salt, 4096);
        let derived = Verifier::from_secret(ScramSecret::verifier_from_salted_password(
            parsed.salt.clone(),
            salted,
            4096,
        ));
        assert_eq!(derived, parsed);
    }

    /// Malformed verifiers are refused with a reason, and the keys never appear in it.
    #[test]
    fn malformed_verifiers_are_refused() {
        for bad in [
            "secret",
            "md5abcdef",
            "SCRAM-SHA-256$4096:c2FsdA==",
            "SCRAM-SHA-256$abc:c2FsdA==$a:b",
            "SCRAM-SHA-256$100:c2FsdA==$a:b",
            "SCRAM-SHA-256$4096:!!!$a:b",
            "SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:c2FsdA==",
        ] {
            let error = Verifier::parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("invalid SCRAM-SHA-256 verifier"),
                "{bad}: {error}"
            );
        }
        let users = [
            UserConfig {
                name: "a".into(),
                password: Verifier::from_password("x", 4096).unwrap().to_string(),
            },
            UserConfig {
                name: "a".into(),
                password: Verifier::from_password("y", 4096).unwrap().to_string(),
            },
        ];
        assert!(UserTable::new(&users)
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }
}
