//! Container names: validation (Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`) and
//! random `adjective_name` names for containers created without `--name`.

const ADJECTIVES: &[&str] = &[
    "admiring",
    "bold",
    "brave",
    "busy",
    "calm",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "ecstatic",
    "elegant",
    "epic",
    "fervent",
    "festive",
    "focused",
    "friendly",
    "funny",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "lucid",
    "magical",
    "modest",
    "nice",
    "nifty",
    "optimistic",
    "peaceful",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "silly",
    "stoic",
    "sweet",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "wizardly",
    "wonderful",
    "youthful",
    "zealous",
    "zen",
];

const NAMES: &[&str] = &[
    "agnesi",
    "allen",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "bohr",
    "boole",
    "borg",
    "cannon",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "euler",
    "fermat",
    "feynman",
    "franklin",
    "gauss",
    "goldberg",
    "hamilton",
    "hawking",
    "hopper",
    "hypatia",
    "jepsen",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mccarthy",
    "meitner",
    "mirzakhani",
    "morse",
    "napier",
    "newton",
    "noether",
    "pascal",
    "perlman",
    "ritchie",
    "shannon",
    "sinoussi",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wiles",
    "wozniak",
    "yalow",
];

/// Checks a user-given name (a leading `/` is allowed, as in Docker).
pub fn validate(name: &str) -> Result<String, String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            n.len() > 1
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        }
        _ => false,
    };
    if ok && n.len() <= 253 {
        Ok(n.to_string())
    } else {
        Err(format!(
            "invalid container name {name:?}, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ))
    }
}

/// A random `adjective_name` from `seed` bytes (from /dev/urandom).
pub fn random(seed: &[u8]) -> String {
    let a = seed.first().copied().unwrap_or(0) as usize;
    let b = seed.get(1).copied().unwrap_or(0) as usize;
    format!(
        "{}_{}",
        ADJECTIVES[a % ADJECTIVES.len()],
        NAMES[b % NAMES.len()]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_names() {
        assert_eq!(validate("web-1").unwrap(), "web-1");
        assert_eq!(validate("/db").unwrap(), "db");
        for bad in ["", "a", "-x", "_x", "a b", "a/b", "é1"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        let r = random(&[3, 200]);
        assert!(validate(&r).is_ok(), "{r}");
    }
}
