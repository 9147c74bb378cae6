//! Lookalike domains: a name made to pass for a protected domain at a
//! glance. Both names are reduced to a "skeleton" (IDNA-decoded, then
//! Cyrillic/Greek confusables and Latin diacritics folded to ASCII, then
//! digit and letter-pair homoglyphs such as `0`/`o`, `1`/`l`, `rn`/`m`,
//! `vv`/`w` folded), and compared exactly and by Damerau-Levenshtein
//! distance. The protected domain itself and its subdomains never match.

use super::domain::within;

/// Longest name compared; DNS names are at most 253 octets (RFC 1035 2.3.4).
const MAX_LEN: usize = 255;

/// Why a candidate looks like a protected domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookalike {
    pub protected: String,
    pub how: String,
}

/// The protected domain `candidate` imitates, if any. `protected` holds
/// normalized (lowercase ASCII) domains.
pub fn find(candidate: &str, protected: &[String]) -> Option<Lookalike> {
    if candidate.len() > MAX_LEN || super::domain::is_ip(candidate) || protected.iter().any(|p| within(candidate, p)) {
        return None;
    }
    let (uni, _) = idna::domain_to_unicode(candidate);
    if protected.iter().any(|p| within(&uni, p)) {
        return None;
    }
    protected.iter().find_map(|p| compare(&uni, p).map(|how| Lookalike { protected: p.clone(), how }))
}

/// How `uni` (an IDNA-decoded name) imitates `prot`, if it does.
fn compare(uni: &str, prot: &str) -> Option<String> {
    let labels: Vec<&str> = uni.split('.').collect();
    let want = prot.split('.').count();
    if labels.len() > want && contains_labels(&labels[..labels.len() - 1], prot) {
        return Some(format!("contains {prot} followed by another domain"));
    }
    let tail = labels[labels.len().saturating_sub(want)..].join(".");
    let (ts, ps) = (skeleton(&tail), skeleton(prot));
    let unicode = !tail.is_ascii();
    let kind = if unicode { "confusable characters" } else { "homoglyphs" };
    if ts == ps {
        return Some(kind.to_string());
    }
    let allowed = allowed_edits(prot);
    // Lengths further apart than the edits allowed cannot match; this also
    // keeps the quadratic distance to names of similar (short) length.
    if ts.chars().count().abs_diff(ps.chars().count()) > allowed {
        return None;
    }
    let d = distance(&ts, &ps);
    (d <= allowed).then(|| match unicode {
        true => format!("{kind} and {d} edit(s)"),
        false => format!("{d} edit(s)"),
    })
}

/// True when the labels of `prot` appear in `labels`, in order: the
/// `example.test.evil.test` trick.
fn contains_labels(labels: &[&str], prot: &str) -> bool {
    let p: Vec<&str> = prot.split('.').collect();
    labels.windows(p.len()).any(|w| w == p.as_slice())
}

/// Edits tolerated: none for short names (too many innocent neighbours),
/// one for medium, two for long ones. The length is that of the name
/// without its top-level label.
fn allowed_edits(prot: &str) -> usize {
    let name = prot.rsplit_once('.').map_or(prot, |(n, _)| n);
    match name.chars().count() {
        0..=4 => 0,
        5..=9 => 1,
        _ => 2,
    }
}

/// The comparison form of a name (see the module doc).
pub fn skeleton(s: &str) -> String {
    let folded: String = s
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' | '|' => 'l',
            c => fold_char(c),
        })
        .collect();
    folded.replace("rn", "m").replace("vv", "w").replace("cl", "d")
}

/// A Latin letter with diacritics, or a Cyrillic or Greek letter drawn
/// like a Latin one, as that Latin letter; other characters lowercased.
pub fn fold_char(c: char) -> char {
    let l = c.to_lowercase().next().unwrap_or(c);
    if l.is_ascii() {
        return l;
    }
    CONFUSABLES.iter().find(|(_, set)| set.contains(l)).map_or(l, |&(base, _)| base)
}

/// Letters that render like an ASCII letter; lowercase forms only.
const CONFUSABLES: &[(char, &str)] = &[
    ('a', "àáâãäåāăąǎаαɑ"),
    ('b', "ьƅвβ"),
    ('c', "çćĉċčсϲ"),
    ('d', "ďđԁ"),
    ('e', "èéêëēĕėęěеє"),
    ('g', "ĝğġģɡ"),
    ('h', "ĥħһн"),
    ('i', "ìíîïĩīĭįıіιї"),
    ('j', "ĵј"),
    ('k', "ķкκ"),
    ('l', "ĺļľŀłӏ"),
    ('m', "м"),
    ('n', "ñńņňпη"),
    ('o', "òóôõöøōŏőоοσ"),
    ('p', "рρ"),
    ('q', "ԛ"),
    ('r', "ŕŗřг"),
    ('s', "śŝşšѕ"),
    ('t', "ţťŧтτ"),
    ('u', "ùúûüũūŭůűųυ"),
    ('v', "ν"),
    ('w', "ŵԝω"),
    ('x', "хχ"),
    ('y', "ýÿŷуγ"),
    ('z', "źżž"),
];

/// Damerau-Levenshtein distance (optimal string alignment) over chars.
pub fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected() -> Vec<String> {
        vec!["example.test".into(), "other.test".into()]
    }

    #[test]
    fn lookalikes_are_found() {
        for (candidate, how) in [
            ("examp1e.test", "homoglyphs"),
            ("exarnple.test", "homoglyphs"),
            ("ex4mple.test", "1 edit(s)"),
            ("exampel.test", "1 edit(s)"),
            ("exmple.test", "1 edit(s)"),
            ("login.examp1e.test", "homoglyphs"),
            // Ukrainian "є" for "e", and Cyrillic "а" for "a", encoded and not.
            ("xn--xample-9uf.test", "confusable characters"),
            ("\u{0435}xample.test", "confusable characters"),
            ("ex\u{0430}mple.test", "confusable characters"),
            ("xn--exmple-4nf.test", "confusable characters"),
            ("0ther.test", "homoglyphs"),
            ("example.test.evil.test", "contains example.test followed by another domain"),
        ] {
            let found = find(candidate, &protected());
            assert_eq!(found.as_ref().map(|l| l.how.as_str()), Some(how), "{candidate}");
        }
        assert_eq!(find("0ther.test", &protected()).unwrap().protected, "other.test");
    }

    #[test]
    fn innocent_names_are_not() {
        for candidate in [
            "example.test",
            "mail.example.test",
            "a.b.other.test",
            "sample.test",
            "unrelated.test",
            "brother.test",
            "192.0.2.1",
            "xn--ls8h.test",
            "test",
            "",
        ] {
            assert_eq!(find(candidate, &protected()), None, "{candidate}");
        }
    }

    #[test]
    fn distances() {
        assert_eq!(distance("example", "exmaple"), 1);
        assert_eq!(distance("example", "sample"), 2);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(skeleton("ЕХАМРLЕ"), "example");
    }
}
