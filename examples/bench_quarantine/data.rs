//! The benchmark's world, the same for `seed` and `query`: sender domains,
//! senders, recipients, symbols and subject words, each a pure function of
//! its index, so the queries ask for values the seeded records hold.

use std::sync::LazyLock;

/// Word lists, written as one string each (rustfmt would put one word a line).
type Words = LazyLock<Vec<&'static str>>;

/// Sender domains, senders (10 per domain) and recipients.
pub const DOMAINS: usize = 500;
pub const SENDERS: usize = 5_000;
pub const RECIPIENTS: usize = 2_000;
/// The recipients' domains (the gateway's own).
pub const OWN: [&str; 2] = ["example.test", "other.test"];

/// A word no subject holds: a search for it reads every row.
pub const RARE_WORD: &str = "zqxwvj";

static SYLLABLES: Words = LazyLock::new(|| {
    "north blue star data cloud green metro prime bright quick ever smart global river stone alpha \
    nova urban pixel cedar"
        .split_whitespace()
        .collect()
});
static KINDS: Words =
    LazyLock::new(|| "mail shop news bank pay corp net labs media trade".split_whitespace().collect());
static TLDS: Words = LazyLock::new(|| "test example invalid".split_whitespace().collect());
static FIRST: Words = LazyLock::new(|| {
    "anna ben carla david emma felix grace hugo ines jonas karin leo mia nils olga paul quinn rosa \
    sven tara uwe vera will xenia yann zoe info billing support noreply sales hr it office team \
    admin service orders alerts news"
        .split_whitespace()
        .collect()
});
static LAST: Words = LazyLock::new(|| {
    "meyer smith garcia rossi dubois novak jensen kowalski silva murphy larsen weber fischer moreau \
    costa nagy berg walsh horvat lind"
        .split_whitespace()
        .collect()
});

pub static SUBJECT_WORDS: Words = LazyLock::new(|| {
    "invoice payment urgent account update delivery order confirmation password reset security alert \
    meeting agenda report quarterly shipment tracking refund offer discount newsletter weekly \
    statement verify document shared contract proposal reminder overdue receipt purchase \
    subscription renewal voicemail message notice action required final warning prize winner claim \
    package customs fee bank transfer wire salary bonus review approval signature pending scan fax \
    backup mailbox quota storage login attempt blocked unusual activity project budget forecast \
    client request quote estimate booking reservation ticket travel itinerary policy change benefits \
    survey feedback webinar invitation welcome access trial expires today tomorrow monday friday \
    march april photos holiday party"
        .split_whitespace()
        .collect()
});

/// (name, default score, reason template); `{}` gets a file or host name.
pub const SYMBOLS: &[(&str, f64, &str)] = &[
    ("ATTACHMENT_EXECUTABLE", 5.0, "{}.zip > setup.exe: PE executable"),
    (
        "ATTACHMENT_DISGUISED_EXECUTABLE",
        8.0,
        "{}.pdf: claims to be a .pdf file (application/pdf) but is a PE executable",
    ),
    ("ATTACHMENT_BLOCKED_EXTENSION", 5.0, "{}.scr: blocked extension .scr"),
    ("ATTACHMENT_DOUBLE_EXTENSION", 5.0, "{}.pdf.exe: double extension"),
    ("ATTACHMENT_MACRO", 5.0, "{}.doc: VBA macros (/Macros)"),
    ("ATTACHMENT_MACRO_ENABLED", 5.0, "{}.docm: macro-enabled Office file"),
    ("ATTACHMENT_ENCRYPTED_ARCHIVE", 3.0, "{}.zip: encrypted member"),
    ("ATTACHMENT_ARCHIVE_BOMB", 5.0, "{}.zip: expands beyond the byte budget"),
    ("ATTACHMENT_UNREADABLE_ARCHIVE", 5.0, "{}.zip: not a readable archive"),
    ("ATTACHMENT_BIDI_NAME", 5.0, "{}: right-to-left override in the file name"),
    ("PHISHING_LINK_MISMATCH", 4.0, "link text shows {}.test but points elsewhere"),
    ("PHISHING_BRAND_LOOKALIKE", 5.0, "sender domain {} looks like a known brand"),
    ("PHISHING_CREDENTIAL_FORM", 4.0, "HTML form asking for a password posts to {}.test"),
    ("URIBL_LISTED", 4.5, "{}.test is listed on a URI block list"),
    ("DNSBL_LISTED", 3.5, "client is listed on a DNS block list ({})"),
    ("SPF_FAIL", 3.0, "SPF fail for {}"),
    ("SPF_SOFTFAIL", 1.5, "SPF softfail for {}"),
    ("DKIM_FAIL", 2.5, "DKIM signature of {} does not verify"),
    ("DMARC_REJECT", 6.0, "DMARC policy reject for {}"),
    ("DMARC_QUARANTINE", 5.0, "DMARC policy quarantine for {}"),
    ("ARC_FAIL", 1.0, "ARC chain of {} broken"),
    ("HEUR_ALL_CAPS_SUBJECT", 1.0, "subject mostly in capitals"),
    ("HEUR_MANY_RECIPIENTS", 1.5, "many recipients from {}"),
    ("HEUR_HTML_ONLY", 0.5, "HTML part without a text alternative"),
    ("HEUR_HIDDEN_TEXT", 2.0, "hidden text in HTML"),
    ("HEUR_SHORTENER", 1.5, "link shortener {}.test"),
    ("HEUR_FORGED_OUTLOOK", 2.5, "headers claim Outlook, structure does not"),
    ("HEUR_DATE_IN_FUTURE", 1.0, "Date header far in the future"),
    ("HEUR_NO_MESSAGE_ID", 1.0, "no Message-ID"),
    ("HEUR_URGENCY", 2.0, "urgency words in subject ({})"),
];

pub fn domain(i: usize) -> String {
    let i = i % DOMAINS;
    let (a, b) = (SYLLABLES[i % SYLLABLES.len()], KINDS[(i / SYLLABLES.len()) % KINDS.len()]);
    let n = i / (SYLLABLES.len() * KINDS.len());
    format!("{a}{b}{n}.{}", TLDS[i % TLDS.len()])
}

pub fn sender(i: usize) -> String {
    let i = i % SENDERS;
    let local = FIRST[(i / DOMAINS) % FIRST.len()];
    format!("{local}{}@{}", i / DOMAINS, domain(i))
}

pub fn recipient(i: usize) -> String {
    let i = i % RECIPIENTS;
    let (f, l) = (FIRST[i % 26], LAST[(i / 26) % LAST.len()]);
    format!("{f}.{l}{}@{}", i / (26 * LAST.len()), OWN[i % 2])
}
