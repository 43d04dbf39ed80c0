//! Who a peer is, in a form people can read aloud, compare and paste.
//!
//! Every jhack installation has a key pair. Its peer id is 155 bits of the BLAKE3
//! hash of the public key (the DER `SubjectPublicKeyInfo` bytes), written as 31
//! Crockford base32 digits and one Luhn mod 32 check character, in 8 groups of 4:
//! `7KQ2-M4XF-...`. The check character catches every single mistyped character
//! and nearly every swap of two neighbouring characters, so a typo in an id that
//! someone read out over the phone is refused instead of trusting a stranger.
//!
//! Parsing is forgiving where it cannot be ambiguous: any case, with or without
//! dashes and spaces, `O` read as `0` and `I`/`L` read as `1`.
//!
//! This module is pure computation: it must never do I/O, and it never decides
//! whom to trust (that is the trust store's job).

use std::fmt;
use std::str::FromStr;

/// The Crockford base32 alphabet: digit value `v` is written as `ALPHABET[v]`.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Base32 digits carrying the 155 bits of an id.
const DIGITS: usize = 31;

/// Characters of an id's text without separators: the digits and the check character.
const CHARS: usize = DIGITS + 1;

/// Characters in one dash-separated group.
const GROUP: usize = 4;

/// The bits of the last byte that an id never uses (160 - 155 = 5).
const UNUSED_BITS: u8 = 0x1F;

/// 155 bits of BLAKE3(SPKI DER): 20 bytes with the low 5 bits of the last byte zero.
///
/// Written (see [`fmt::Display`]) as `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX` and
/// parsed back with [`FromStr`]; serialised with serde as that text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; 20]);

/// Text that is not a peer id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdError {
    /// Not 32 characters once dashes and spaces are left out.
    #[error("a peer id has 32 characters (8 groups of 4), this has {got}")]
    Length {
        /// How many characters there were (dashes and spaces not counted).
        got: usize,
    },
    /// A character outside the Crockford base32 alphabet.
    #[error("'{ch}' is not used in peer ids")]
    Character {
        /// The first such character.
        ch: char,
    },
    /// The check character does not match the other 31.
    #[error("the check character does not match: a typo in the peer id?")]
    Check,
}

impl PeerId {
    /// The id of the installation whose public key is `spki_der` (DER
    /// `SubjectPublicKeyInfo`): the first 20 bytes of its BLAKE3 hash with the low
    /// 5 bits cleared.
    pub fn from_public_key(spki_der: &[u8]) -> PeerId {
        let hash = blake3::hash(spki_der);
        let mut bytes = [0u8; 20];
        for (out, &b) in bytes.iter_mut().zip(hash.as_bytes()) {
            *out = b;
        }
        if let Some(last) = bytes.last_mut() {
            *last &= !UNUSED_BITS;
        }
        PeerId(bytes)
    }

    /// The 20 bytes (the low 5 bits of the last one are zero).
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The id with these bytes; `None` when the low 5 bits of the last byte are
    /// not zero (no id has them set).
    pub fn from_bytes(b: [u8; 20]) -> Option<PeerId> {
        match b.last() {
            Some(last) if last & UNUSED_BITS != 0 => None,
            _ => Some(PeerId(b)),
        }
    }

    /// The first two groups, e.g. `"7KQ2-M4XF"`, for panels and logs.
    pub fn short(&self) -> String {
        let text = self.text();
        let mut out = String::with_capacity(2 * GROUP + 1);
        for (i, &c) in text.iter().take(2 * GROUP).enumerate() {
            if i == GROUP {
                out.push('-');
            }
            out.push(char::from(c));
        }
        out
    }

    /// Whether `text` (any case, with or without dashes and spaces, `O` for `0`
    /// and `I`/`L` for `1` allowed) is a prefix of this id's text. The empty text
    /// is a prefix of every id; text with a character that no id uses is a prefix
    /// of none.
    pub fn matches_prefix(&self, text: &str) -> bool {
        let own = self.text();
        let mut own = own.iter();
        for ch in text.chars().filter(|&c| !is_separator(c)) {
            let Some(value) = digit_value(ch) else {
                return false;
            };
            match (own.next(), ALPHABET.get(usize::from(value))) {
                (Some(a), Some(b)) if a == b => {}
                _ => return false,
            }
        }
        true
    }

    /// The 31 base32 digit values of the 155 bits, most significant first.
    fn digits(&self) -> [u8; DIGITS] {
        let mut digits = [0u8; DIGITS];
        let mut slots = digits.iter_mut();
        let mut acc: u16 = 0;
        let mut bits = 0u32;
        for &byte in &self.0 {
            acc = (acc << 8) | u16::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                // The 32nd group is the 5 unused bits (always zero): there is no
                // slot left for it.
                if let Some(slot) = slots.next() {
                    *slot = ((acc >> bits) & 0x1F) as u8;
                }
            }
            acc &= (1 << bits) - 1;
        }
        digits
    }

    /// The id from its 31 digit values (each below 32).
    fn from_digits(digits: &[u8; DIGITS]) -> PeerId {
        let mut bytes = [0u8; 20];
        let mut slots = bytes.iter_mut();
        let mut acc: u16 = 0;
        let mut bits = 0u32;
        // A zero digit for the unused bits makes 32 × 5 = 160 bits: 20 bytes.
        for &d in digits.iter().chain(std::iter::once(&0)) {
            acc = (acc << 5) | u16::from(d & 0x1F);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                if let Some(slot) = slots.next() {
                    *slot = (acc >> bits) as u8;
                }
                acc &= (1 << bits) - 1;
            }
        }
        PeerId(bytes)
    }

    /// The 32 characters (digits, then the check character) without dashes.
    fn text(&self) -> [u8; CHARS] {
        let digits = self.digits();
        let mut text = [b'0'; CHARS];
        let check = luhn_check(&digits);
        for (out, &d) in text
            .iter_mut()
            .zip(digits.iter().chain(std::iter::once(&check)))
        {
            *out = ALPHABET.get(usize::from(d)).copied().unwrap_or(b'0');
        }
        text
    }
}

/// The Luhn mod N check digit (N = 32) of `digits`: the standard algorithm, with
/// the factor 2 on the rightmost digit, so that the check digit appended makes the
/// whole sequence valid. A single changed digit always changes the sum (doubling
/// with the carry folded in is a permutation of 0..32), and swapping two
/// neighbours goes unnoticed only for the pair `0`/`Z`.
fn luhn_check(digits: &[u8]) -> u8 {
    const N: u32 = 32;
    let mut factor = 2;
    let mut sum = 0u32;
    for &d in digits.iter().rev() {
        let addend = factor * u32::from(d);
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / N + addend % N;
    }
    ((N - sum % N) % N) as u8
}

/// The value of one character of an id's text, with Crockford's readings of
/// `O`, `I` and `L`; `None` for characters ids never use (including `U`).
fn digit_value(ch: char) -> Option<u8> {
    let upper = match ch.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        c => c,
    };
    let byte = u8::try_from(upper).ok()?;
    ALPHABET
        .iter()
        .position(|&a| a == byte)
        .and_then(|p| u8::try_from(p).ok())
}

/// Characters that parsing and prefix matching skip.
fn is_separator(ch: char) -> bool {
    ch == '-' || ch == ' '
}

impl fmt::Display for PeerId {
    /// `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`: 31 digits and the check character.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        let mut out = String::with_capacity(CHARS + CHARS / GROUP - 1);
        for (i, &c) in text.iter().enumerate() {
            if i > 0 && i % GROUP == 0 {
                out.push('-');
            }
            out.push(char::from(c));
        }
        f.pad(&out)
    }
}

impl fmt::Debug for PeerId {
    /// `PeerId(7KQ2-M4XF)`: the short form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    /// Parses the text of an id: any case, dashes and spaces anywhere, `O` for
    /// `0` and `I`/`L` for `1`. The check character must match.
    fn from_str(s: &str) -> Result<PeerId, PeerIdError> {
        let mut values = [0u8; CHARS];
        let mut got = 0usize;
        for ch in s.chars().filter(|&c| !is_separator(c)) {
            let value = digit_value(ch).ok_or(PeerIdError::Character { ch })?;
            if let Some(slot) = values.get_mut(got) {
                *slot = value;
            }
            got += 1;
        }
        if got != CHARS {
            return Err(PeerIdError::Length { got });
        }
        let (&check, digits) = values.split_last().ok_or(PeerIdError::Length { got })?;
        let digits: &[u8; DIGITS] = digits.try_into().map_err(|_| PeerIdError::Length { got })?;
        if check != luhn_check(digits) {
            return Err(PeerIdError::Check);
        }
        Ok(PeerId::from_digits(digits))
    }
}

impl serde::Serialize for PeerId {
    /// As the [`fmt::Display`] text.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerId {
    /// From the text of an id, as [`FromStr`] parses it.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PeerId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids from made-up keys.
    fn ids(n: u32) -> Vec<PeerId> {
        (0..n)
            .map(|i| PeerId::from_public_key(format!("key {i}").as_bytes()))
            .collect()
    }

    /// The 32 characters of an id's text, without dashes.
    fn chars(id: &PeerId) -> Vec<char> {
        id.to_string().chars().filter(|&c| c != '-').collect()
    }

    fn with_dashes(chars: &[char]) -> String {
        chars
            .chunks(GROUP)
            .map(|g| g.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }

    #[test]
    fn text_layout() {
        for id in ids(50) {
            let text = id.to_string();
            assert_eq!(text.len(), 39, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(groups.len(), 8, "{text}");
            for g in groups {
                assert_eq!(g.len(), 4, "{text}");
                assert!(g.bytes().all(|b| ALPHABET.contains(&b)), "{text}");
            }
            assert_eq!(id.short(), text[..9]);
            assert_eq!(format!("{id:?}"), format!("PeerId({})", &text[..9]));
        }
    }

    #[test]
    fn known_bytes_encode_most_significant_first() {
        let mut b = [0u8; 20];
        assert_eq!(
            PeerId::from_bytes(b).map(|id| id.to_string()).as_deref(),
            Some("0000-0000-0000-0000-0000-0000-0000-0000")
        );
        b[0] = 0b0000_1000; // digit 0 = 00001, the rest zero
        let id = PeerId::from_bytes(b).expect("valid");
        assert!(id.to_string().starts_with("1000-"), "{id}");
        let mut b = [0xFF; 20];
        b[19] = 0xE0;
        let id = PeerId::from_bytes(b).expect("valid");
        assert!(
            id.to_string()
                .starts_with("ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZ")
        );
        assert_eq!(id.to_string().parse::<PeerId>(), Ok(id));
    }

    #[test]
    fn round_trip() {
        for id in ids(2000) {
            assert_eq!(id.to_string().parse::<PeerId>(), Ok(id));
            assert_eq!(PeerId::from_bytes(*id.as_bytes()), Some(id));
            assert_eq!(id.as_bytes()[19] & UNUSED_BITS, 0);
        }
    }

    #[test]
    fn from_bytes_refuses_the_unused_bits() {
        for bit in 0..5 {
            let mut b = [0u8; 20];
            b[19] = 1 << bit;
            assert_eq!(PeerId::from_bytes(b), None);
        }
        let mut b = [0u8; 20];
        b[19] = 0x20;
        assert!(PeerId::from_bytes(b).is_some());
    }

    #[test]
    fn from_public_key_is_deterministic_and_distinct() {
        let a = PeerId::from_public_key(b"public key a");
        assert_eq!(a, PeerId::from_public_key(b"public key a"));
        assert_ne!(a, PeerId::from_public_key(b"public key b"));
        let hash = blake3::hash(b"public key a");
        assert_eq!(a.as_bytes()[..19], hash.as_bytes()[..19]);
        assert_eq!(a.as_bytes()[19], hash.as_bytes()[19] & 0xE0);
        let all = ids(1000);
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }

    #[test]
    fn every_single_substitution_is_refused() {
        for id in ids(5) {
            let original = chars(&id);
            for pos in 0..CHARS {
                for &sub in ALPHABET {
                    let sub = char::from(sub);
                    if sub == original[pos] {
                        continue;
                    }
                    let mut typo = original.clone();
                    typo[pos] = sub;
                    let text = with_dashes(&typo);
                    assert_eq!(
                        text.parse::<PeerId>(),
                        Err(PeerIdError::Check),
                        "{text} (from {id})"
                    );
                }
            }
        }
    }

    #[test]
    fn nearly_every_adjacent_transposition_is_refused() {
        let (mut tried, mut refused) = (0u32, 0u32);
        for id in ids(200) {
            let original = chars(&id);
            for pos in 0..CHARS - 1 {
                if original[pos] == original[pos + 1] {
                    continue;
                }
                let mut swapped = original.clone();
                swapped.swap(pos, pos + 1);
                tried += 1;
                if with_dashes(&swapped).parse::<PeerId>().is_err() {
                    refused += 1;
                }
            }
        }
        assert!(tried > 5000, "{tried}");
        assert!(
            f64::from(refused) > 0.9 * f64::from(tried),
            "{refused} of {tried} refused"
        );
    }

    #[test]
    fn only_0_and_z_swapped_go_unnoticed() {
        // Luhn mod 32 misses an adjacent swap only when doubling minus the
        // value agrees modulo 32, which happens for the pair 0 and Z alone.
        let mut unnoticed = std::collections::BTreeSet::new();
        for id in ids(200) {
            let original = chars(&id);
            for pos in 0..CHARS - 1 {
                let mut swapped = original.clone();
                swapped.swap(pos, pos + 1);
                if swapped != original && with_dashes(&swapped).parse::<PeerId>().is_ok() {
                    let mut pair = [original[pos], original[pos + 1]];
                    pair.sort_unstable();
                    unnoticed.insert(pair);
                }
            }
        }
        assert!(unnoticed.iter().all(|p| *p == ['0', 'Z']), "{unnoticed:?}");
    }

    #[test]
    fn check_character_completes_a_valid_luhn_sequence() {
        // Validation the textbook way: over all 32 values, factor 1 on the
        // rightmost (the check character), alternating leftwards; sum ≡ 0 mod 32.
        for id in ids(500) {
            let mut sum = 0u32;
            for (i, c) in chars(&id).iter().rev().enumerate() {
                let v = u32::from(digit_value(*c).expect("alphabet"));
                let addend = if i % 2 == 1 { 2 * v } else { v };
                sum += addend / 32 + addend % 32;
            }
            assert_eq!(sum % 32, 0, "{id}");
        }
    }

    #[test]
    fn forgiving_spellings_parse() {
        for id in ids(100) {
            let text = id.to_string();
            let plain: String = text.chars().filter(|&c| c != '-').collect();
            assert_eq!(text.to_lowercase().parse::<PeerId>(), Ok(id));
            assert_eq!(plain.parse::<PeerId>(), Ok(id));
            assert_eq!(text.replace('-', " ").parse::<PeerId>(), Ok(id));
            assert_eq!(format!("  {text} ").parse::<PeerId>(), Ok(id));
            let confused = text.replace('0', "O").replace('1', "l");
            assert_eq!(confused.parse::<PeerId>(), Ok(id), "{confused}");
            let confused = plain.replace('0', "o").replace('1', "I");
            assert_eq!(confused.parse::<PeerId>(), Ok(id), "{confused}");
        }
    }

    #[test]
    fn errors() {
        let id = ids(1)[0];
        let text = id.to_string();
        assert_eq!(
            text[..38].parse::<PeerId>(),
            Err(PeerIdError::Length { got: 31 })
        );
        assert_eq!(
            format!("{text}-A").parse::<PeerId>(),
            Err(PeerIdError::Length { got: 33 })
        );
        assert_eq!("".parse::<PeerId>(), Err(PeerIdError::Length { got: 0 }));
        let with_u = format!("U{}", &text[1..]);
        assert_eq!(
            with_u.parse::<PeerId>(),
            Err(PeerIdError::Character { ch: 'U' })
        );
        assert_eq!(
            format!("{}_{}", &text[..4], &text[5..]).parse::<PeerId>(),
            Err(PeerIdError::Character { ch: '_' })
        );
        assert_eq!(
            PeerIdError::Length { got: 31 }.to_string(),
            "a peer id has 32 characters (8 groups of 4), this has 31"
        );
        assert_eq!(
            PeerIdError::Character { ch: 'U' }.to_string(),
            "'U' is not used in peer ids"
        );
        assert_eq!(
            PeerIdError::Check.to_string(),
            "the check character does not match: a typo in the peer id?"
        );
    }

    #[test]
    fn prefixes() {
        let id = ids(1)[0];
        let text = id.to_string();
        let plain: String = text.chars().filter(|&c| c != '-').collect();
        for n in 0..=plain.len() {
            assert!(id.matches_prefix(&plain[..n]), "{}", &plain[..n]);
            assert!(id.matches_prefix(&plain[..n].to_lowercase()));
        }
        assert!(id.matches_prefix(&text));
        assert!(id.matches_prefix(&text[..9]));
        assert!(id.matches_prefix(&text[..9].replace('0', "o").replace('1', "L")));
        assert!(!id.matches_prefix(&format!("{plain}0")));
        assert!(!id.matches_prefix("U"));
        let other_first = ALPHABET
            .iter()
            .map(|&b| char::from(b))
            .find(|&c| !plain.starts_with(c))
            .expect("some other character");
        assert!(!id.matches_prefix(&other_first.to_string()));
    }

    #[test]
    fn serde_through_toml() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Holder {
            id: PeerId,
            ids: Vec<PeerId>,
        }
        let all = ids(3);
        let holder = Holder {
            id: all[0],
            ids: all.clone(),
        };
        let text = toml::to_string(&holder).expect("serialise");
        assert!(text.contains(&format!("id = \"{}\"", all[0])), "{text}");
        let back: Holder = toml::from_str(&text).expect("deserialise");
        assert_eq!(back, holder);

        let good = all[0].to_string();
        let typo = text.replacen(&good, &format!("U{}", &good[1..]), 1);
        let err = toml::from_str::<Holder>(&typo).expect_err("typo refused");
        assert!(err.message().contains("not used in peer ids"), "{err}");
    }
}
