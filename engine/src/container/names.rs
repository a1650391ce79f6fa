//! Container IDs and names: 64-hex IDs, generated `adjective_surname` names, Docker's name
//! rule, and finding a container by full ID, name or unique ID prefix. Pure.

use std::collections::BTreeMap;

use super::ContainerError;

const ADJECTIVES: [&str; 48] = [
    "able", "agile", "amber", "ample", "ardent", "bold", "brave", "bright", "calm", "candid",
    "clever", "cosmic", "crisp", "daring", "deft", "eager", "earnest", "fervent", "fond", "frank",
    "gentle", "glad", "hardy", "hearty", "humble", "jolly", "keen", "kind", "lively", "loyal",
    "lucid", "mellow", "merry", "nimble", "noble", "patient", "plucky", "proud", "quiet", "rapid",
    "serene", "sharp", "steady", "sturdy", "swift", "tender", "vivid", "witty",
];

/// Scientists and engineers, as Docker's generator uses.
const SURNAMES: [&str; 48] = [
    "agnesi", "babbage", "bardeen", "bohr", "boole", "cerf", "curie", "darwin", "dijkstra",
    "easley", "euler", "faraday", "fermat", "feynman", "gauss", "goodall", "hamilton", "hawking",
    "hopper", "hypatia", "johnson", "kepler", "knuth", "lamarr", "lamport", "liskov", "lovelace",
    "maxwell", "meitner", "mendel", "morse", "newton", "noether", "pascal", "pasteur", "perlman",
    "planck", "ritchie", "shannon", "sinoussi", "tesla", "thompson", "torvalds", "turing", "volta",
    "wilson", "wozniak", "yalow",
];

/// `adjective_surname` from two random indexes; `attempt` > 0 appends a digit, as Docker does
/// when the first choice is taken.
pub fn generated_name(random: u64, attempt: u32) -> String {
    let a = ADJECTIVES[(random % ADJECTIVES.len() as u64) as usize];
    let s = SURNAMES[((random >> 32) % SURNAMES.len() as u64) as usize];
    if attempt == 0 {
        format!("{a}_{s}")
    } else {
        format!("{a}_{s}{}", random % 10)
    }
}

/// Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading `/`.
pub fn validate_name(name: &str) -> Result<String, ContainerError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let b = n.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 253
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        return Err(ContainerError::Invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

/// Finds a container among `by_id` (ID → name) by full ID, exact name, or unique ID prefix,
/// in that order, as Docker does. Returns the ID.
pub fn resolve<'a>(
    by_id: &'a BTreeMap<String, String>,
    what: &str,
) -> Result<&'a str, ContainerError> {
    let want = what.strip_prefix('/').unwrap_or(what);
    if want.is_empty() {
        return Err(ContainerError::NotFound(what.to_string()));
    }
    if let Some((id, _)) = by_id.get_key_value(want) {
        return Ok(id);
    }
    if let Some((id, _)) = by_id.iter().find(|(_, n)| n.as_str() == want) {
        return Ok(id);
    }
    let mut hits = by_id
        .range(want.to_string()..)
        .take_while(|(id, _)| id.starts_with(want));
    match (hits.next(), hits.next()) {
        (Some((id, _)), None) => Ok(id),
        (Some(_), Some(_)) => Err(ContainerError::Ambiguous(want.to_string())),
        _ => Err(ContainerError::NotFound(what.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> BTreeMap<String, String> {
        [
            ("abc123".repeat(10) + "abcd", "web"),
            ("abd456".repeat(10) + "abcd", "db"),
            ("ffff00".repeat(10) + "abcd", "abc"),
        ]
        .into_iter()
        .map(|(i, n)| (i, n.to_string()))
        .collect()
    }

    #[test]
    fn full_id_then_name_then_unique_prefix() {
        let t = table();
        let web = "abc123".repeat(10) + "abcd";
        assert_eq!(resolve(&t, &web).unwrap(), web);
        assert_eq!(resolve(&t, "web").unwrap(), web);
        assert_eq!(resolve(&t, "/web").unwrap(), web);
        assert_eq!(resolve(&t, "abc1").unwrap(), web);
        // A name wins over an ID prefix.
        assert_eq!(resolve(&t, "abc").unwrap(), "ffff00".repeat(10) + "abcd");
        assert!(matches!(resolve(&t, "ab"), Err(ContainerError::Ambiguous(p)) if p == "ab"));
        assert_eq!(
            resolve(&t, "nope").unwrap_err().to_string(),
            "No such container: nope"
        );
        assert!(resolve(&t, "").is_err());
    }

    #[test]
    fn generated_names_follow_the_name_rule() {
        for r in [0u64, 1, u64::MAX, 0xdead_beef_1234_5678] {
            for attempt in [0, 1] {
                let n = generated_name(r, attempt);
                assert!(validate_name(&n).is_ok(), "{n}");
                assert!(n.contains('_'));
            }
        }
        assert_ne!(generated_name(1, 0), generated_name(1 << 32, 0));
    }

    #[test]
    fn the_name_rule() {
        assert_eq!(validate_name("/web-1.a_b").unwrap(), "web-1.a_b");
        for bad in ["a", "-web", "we b", "wé", "web/1", ""] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("[a-zA-Z0-9]"), "{e}");
        }
    }
}
