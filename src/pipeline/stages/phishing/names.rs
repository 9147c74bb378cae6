//! Display-name impersonation: a From whose display name is one of the
//! protected organisation's people, or shows a protected address, while
//! the mail comes from elsewhere. Reader's mail clients often show only the
//! display name, so this is the cheapest impersonation there is.

use super::domain::{of_address, within_any};
use super::lookalike::{distance, fold_char};

/// Shortest normalized name for which one typing error still matches;
/// shorter names would match too many strangers.
const FUZZY_MIN_LEN: usize = 8;

/// Lowercase words of a name, diacritics and confusables folded, with
/// punctuation and extra spaces removed: "  DOE,  Jáne " is "doe jane".
pub fn normalize(name: &str) -> String {
    let folded: String = name.chars().map(|c| if c.is_alphanumeric() { fold_char(c) } else { ' ' }).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The configured person `display` passes for, if any. `people` holds
/// normalized names.
pub fn impersonated<'p>(display: &str, people: &'p [String]) -> Option<&'p str> {
    let shown = normalize(display);
    if shown.is_empty() {
        return None;
    }
    people.iter().find(|p| same_person(&shown, p)).map(|p| p.as_str())
}

/// Equal, the same words in another order ("doe jane"), the name followed
/// or preceded by other words ("jane doe ceo"), or one typing error away.
fn same_person(shown: &str, person: &str) -> bool {
    if person.is_empty() {
        return false;
    }
    if shown == person {
        return true;
    }
    let (mut a, mut b): (Vec<&str>, Vec<&str>) = (shown.split(' ').collect(), person.split(' ').collect());
    if b.len() >= 2 && a.windows(b.len()).any(|w| w == b.as_slice()) {
        return true;
    }
    a.sort_unstable();
    b.sort_unstable();
    if a == b {
        return true;
    }
    person.len() >= FUZZY_MIN_LEN && shown.len() < 4 * person.len() && distance(shown, person) <= 1
}

/// An address of a protected domain written in the display name that is
/// not the real address: `"ceo@example.test" <x@elsewhere.test>`.
pub fn shown_address(display: &str, real: &str, protected: &[String]) -> Option<String> {
    display
        .split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | '"' | '\'' | ',' | ';' | '[' | ']'))
        .filter(|w| w.contains('@'))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .find(|w| of_address(w).is_some_and(|d| within_any(&d, protected)) && !w.eq_ignore_ascii_case(real))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Vec<String> {
        ["Jane Doe", "Dr. Émile Zola", "Bo Li"].iter().map(|n| normalize(n)).collect()
    }

    #[test]
    fn names_that_match() {
        for shown in [
            "Jane Doe",
            "  JANE   doe ",
            "Doe, Jane",
            "Jane Doe (CEO)",
            "Jane DOe via Phone",
            "Jnae Doe",
            "Jane Do",
            "dr emile zola",
            "Dr. Emile Zola",
            "Bo Li",
            "Jаne Doe",
        ] {
            assert!(impersonated(shown, &people()).is_some(), "{shown}");
        }
    }

    #[test]
    fn names_that_do_not() {
        for shown in ["Jane", "Doe", "John Doe", "Bob Li", "Bo Lu", "", "  ", "Jane Smith-Doe"] {
            assert_eq!(impersonated(shown, &people()), None, "{shown}");
        }
    }

    #[test]
    fn addresses_in_display_names() {
        let p = vec!["example.test".to_string()];
        assert_eq!(shown_address("ceo@example.test", "x@evil.test", &p).as_deref(), Some("ceo@example.test"));
        assert_eq!(
            shown_address("'CEO@Mail.Example.Test' via", "x@evil.test", &p).as_deref(),
            Some("ceo@mail.example.test")
        );
        assert_eq!(shown_address("ceo@example.test", "ceo@example.test", &p), None);
        assert_eq!(shown_address("someone@elsewhere.test", "x@evil.test", &p), None);
        assert_eq!(shown_address("Jane Doe", "x@evil.test", &p), None);
    }
}
