//! Layouts simple enough to read without chrono's general parser: numbers, short month
//! names, literals, spaces and a `+hhmm` offset, as in `%d/%b/%Y:%H:%M:%S %z` (Apache's and
//! nginx's). A text is read as chrono reads it; one this reader does not take (another form
//! of offset, a leap second, a date that does not exist, ...) is left to chrono, whose answer
//! counts. chrono's parser, made for every layout, took a fifth of the time of rendering an
//! nginx line.

use chrono::format::{Fixed, Item, Numeric};
use chrono::NaiveDate;

use crate::clock::number;

/// A layout of the pieces below only, with a year, a month, a day, an hour, a minute, a
/// second and an offset, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleLayout {
    pieces: Vec<Piece>,
    /// The bytes of a text whose numbers are all of full width and whose spaces are one
    /// ` ` each (nginx's times are): such a text is read at fixed places, without the loop
    /// over pieces (which took about 800 instructions a time).
    full_width: Vec<Byte>,
    /// Where each value is in such a text, in the order of [`SimpleLayout::read`]'s values:
    /// year, month (its name's or its number's first byte), day, hour, minute, second,
    /// offset.
    places: [usize; 7],
}

/// What a byte of a full-width text must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Byte {
    Exactly(u8),
    Digit,
    Letter,
    Sign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text that must be there as it is.
    Literal(Box<str>),
    /// Any whitespace, or none.
    Space,
    /// After any whitespace, 1 to [`Field::width`] digits.
    Number(Field),
    /// The first three letters of a month's English name, in any case.
    MonthName,
    /// After any whitespace, `+hhmm` or `-hhmm`.
    Offset,
}

/// What a number is, in the order of [`SimpleLayout::read`]'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl Field {
    /// At most as many digits as chrono reads for it (a year without a sign: 4).
    fn width(self) -> usize {
        match self {
            Field::Year => 4,
            _ => 2,
        }
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

impl SimpleLayout {
    /// The layout of chrono's parsed `items`, if it is simple.
    pub fn of(items: &[Item<'_>]) -> Option<SimpleLayout> {
        let mut pieces = Vec::with_capacity(items.len());
        // One bit per field (a month name is the month), and the offset's.
        let mut seen = 0u8;
        let mut full_width = Vec::new();
        let mut places = [0; 7];
        for item in items {
            let (piece, bit) = match item {
                Item::Literal(text) => (Piece::Literal((*text).into()), None),
                Item::OwnedLiteral(text) => (Piece::Literal(text.clone()), None),
                Item::Space(_) | Item::OwnedSpace(_) => (Piece::Space, None),
                Item::Numeric(number, _) => {
                    let field = match number {
                        Numeric::Year => Field::Year,
                        Numeric::Month => Field::Month,
                        Numeric::Day => Field::Day,
                        Numeric::Hour => Field::Hour,
                        Numeric::Minute => Field::Minute,
                        Numeric::Second => Field::Second,
                        _ => return None,
                    };
                    (Piece::Number(field), Some(field as u8))
                }
                Item::Fixed(Fixed::ShortMonthName) => (Piece::MonthName, Some(Field::Month as u8)),
                Item::Fixed(Fixed::TimezoneOffset) => (Piece::Offset, Some(6)),
                _ => return None,
            };
            if let Some(bit) = bit {
                if seen & 1 << bit != 0 {
                    return None;
                }
                seen |= 1 << bit;
                places[usize::from(bit)] = full_width.len();
            }
            match &piece {
                Piece::Literal(text) => full_width.extend(text.bytes().map(Byte::Exactly)),
                Piece::Space => full_width.push(Byte::Exactly(b' ')),
                Piece::Number(field) => full_width.extend([Byte::Digit].repeat(field.width())),
                Piece::MonthName => full_width.extend([Byte::Letter; 3]),
                Piece::Offset => full_width.extend([
                    Byte::Sign,
                    Byte::Digit,
                    Byte::Digit,
                    Byte::Digit,
                    Byte::Digit,
                ]),
            }
            pieces.push(piece);
        }
        (seen == 0b111_1111).then_some(SimpleLayout {
            pieces,
            full_width,
            places,
        })
    }

    /// The instant `text` names, in milliseconds since the epoch, if it is read here; `None`
    /// leaves it to chrono. A full-width text is read at fixed places, another piece by piece
    /// (over bytes: slicing a `str` at each piece checked a character boundary each time).
    pub fn read(&self, text: &str) -> Option<i64> {
        match self.read_full_width(text.as_bytes()) {
            Some(read) => read,
            None => self.read_pieces(text.as_bytes()),
        }
    }

    /// [`SimpleLayout::read`] of a full-width text; `None` if `text` is not one.
    fn read_full_width(&self, text: &[u8]) -> Option<Option<i64>> {
        if text.len() != self.full_width.len() {
            return None;
        }
        let fits = self
            .full_width
            .iter()
            .zip(text)
            .all(|(want, b)| match want {
                Byte::Exactly(want) => b == want,
                Byte::Digit => b.is_ascii_digit(),
                Byte::Letter => b.is_ascii_alphabetic(),
                Byte::Sign => *b == b'+' || *b == b'-',
            });
        if !fits {
            return None;
        }
        // Digits only, at the places of the layout's numbers: at most 4, no overflow.
        let number = |at: usize, width: usize| number(&text[at..at + width]) as u32;
        let [year, month, day, hour, minute, second, offset] = self.places;
        let month = match self.full_width[month] {
            Byte::Letter => month_of(&text[month..month + 3]),
            _ => Some(number(month, 2)),
        };
        Some(month.and_then(|month| {
            instant(
                [
                    number(year, 4),
                    month,
                    number(day, 2),
                    number(hour, 2),
                    number(minute, 2),
                    number(second, 2),
                ],
                text[offset],
                [number(offset + 1, 2), number(offset + 3, 2)],
            )
        }))
    }

    /// [`SimpleLayout::read`], piece by piece.
    fn read_pieces(&self, text: &[u8]) -> Option<i64> {
        let mut s = text;
        let mut values = [0u32; 6];
        let (mut sign, mut offset) = (b'+', [0, 0]);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(literal) => s = after(s, literal.as_bytes())?,
                Piece::Space => s = trim_start(s)?,
                Piece::Number(field) => {
                    s = trim_start(s)?;
                    let digits = s
                        .iter()
                        .take(field.width())
                        .take_while(|d| d.is_ascii_digit())
                        .count();
                    if digits == 0 {
                        return None;
                    }
                    // Digits only, at most 4: no overflow, no sign.
                    values[*field as usize] = number(&s[..digits]) as u32;
                    s = &s[digits..];
                }
                Piece::MonthName => {
                    let (name, rest) = s.split_first_chunk::<3>()?;
                    values[Field::Month as usize] = month_of(name)?;
                    s = rest;
                }
                Piece::Offset => {
                    s = trim_start(s)?;
                    let (b, rest) = s.split_first_chunk::<5>()?;
                    if !b[1..].iter().all(u8::is_ascii_digit) {
                        return None;
                    }
                    let two = |i: usize| number(&b[i..i + 2]) as u32;
                    (sign, offset) = (b[0], [two(1), two(3)]);
                    s = rest;
                }
            }
        }
        if !s.is_empty() {
            return None;
        }
        instant(values, sign, offset)
    }
}

/// The month (1 to 12) a short English name names, in any case, as chrono compares: each
/// byte with the bit of lower case set.
fn month_of(name: &[u8]) -> Option<u32> {
    let lower = [name[0] | 32, name[1] | 32, name[2] | 32];
    let month = MONTHS.iter().position(|m| **m == lower)?;
    Some(month as u32 + 1)
}

/// The instant of `values` (year, month, day, hour, minute, second) at the offset `sign`
/// (`+` or `-`) `[hours, minutes]`, in milliseconds since the epoch, if chrono would read them
/// so; `None` leaves them to chrono.
fn instant(values: [u32; 6], sign: u8, [hours, minutes]: [u32; 2]) -> Option<i64> {
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    // chrono refuses an offset of a day or more, and 60 minutes or more.
    if hours > 23 || minutes > 59 {
        return None;
    }
    let offset = sign * i64::from(hours * 3600 + minutes * 60);
    let [year, month, day, hour, minute, second] = values;
    // A leap second is chrono's to read.
    if second > 59 {
        return None;
    }
    let at = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_opt(hour, minute, second)?;
    Some((at.and_utc().timestamp() - offset) * 1000)
}

/// `s` without the ASCII whitespace it starts with; `None` (left to chrono, which trims
/// Unicode's) where a non-ASCII character follows it.
fn trim_start(s: &[u8]) -> Option<&[u8]> {
    // ASCII's whitespace for Unicode: tab, line feed, vertical tab, form feed, return, space.
    let ascii = s
        .iter()
        .take_while(|b| matches!(b, b'\t'..=b'\r' | b' '))
        .count();
    let s = &s[ascii..];
    match s.first() {
        Some(b) if !b.is_ascii() => None,
        _ => Some(s),
    }
}

/// `s` after `literal`, if it starts with it: compared byte by byte, as literals are short
/// (a call to memcmp each was a tenth of reading a time).
fn after<'s>(s: &'s [u8], literal: &[u8]) -> Option<&'s [u8]> {
    let starts = s.len() >= literal.len() && s.iter().zip(literal).all(|(a, b)| a == b);
    starts.then(|| &s[literal.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::timestamp::by_chrono;
    use chrono::format::StrftimeItems;

    #[test]
    fn reads_what_chrono_reads() {
        let alternatives = |piece: &Piece| -> Vec<String> {
            let list: &[&str] = match piece {
                Piece::Literal(l) => return vec![l.to_string(), String::new(), "-".into()],
                Piece::Space => &[" ", "", "  ", "\t", "\x0b", "\u{3000}", " \u{a0}", "\x1f"],
                Piece::Number(Field::Year) => &["2026", "2024", "0000", "99999", "+2026", "7"],
                Piece::Number(_) => &[
                    "12", "00", "01", "7", " 7", "\u{a0}7", "23", "24", "29", "30", "31", "59",
                    "60", "123", "x",
                ],
                Piece::MonthName => &[
                    "Nov", "nov", "FEB", "Feb", "feb.", "November", "No", "Xyz", "é",
                ],
                Piece::Offset => &[
                    "+0100", "-0530", "+2359", "+2400", "+0160", "+01:00", "Z", " +0100", "+01",
                    "-0000", "−0100",
                ],
            };
            list.iter().map(|s| s.to_string()).collect()
        };
        let mut rng = fastrand::Rng::with_seed(7);
        for pattern in [
            "%d/%b/%Y:%H:%M:%S %z",
            "%Y-%m-%d %H:%M:%S%z",
            "%e %b %Y %H.%M.%S %z",
        ] {
            let items: Vec<Item> = StrftimeItems::new(pattern).parse_to_owned().unwrap();
            let layout = SimpleLayout::of(&items).unwrap();
            let (mut read_here, mut full_width) = (0, 0);
            for _ in 0..20_000 {
                let mut text = String::new();
                for piece in &layout.pieces {
                    let options = alternatives(piece);
                    // Mostly the first (well-formed) form, so that whole texts are read here.
                    let pick = if rng.u8(..10) == 0 {
                        rng.usize(..options.len())
                    } else {
                        0
                    };
                    text.push_str(&options[pick]);
                }
                if rng.u8(..20) == 0 {
                    text.push_str(["x", " ", "0"][rng.usize(..3)]);
                }
                // A full-width text is read at fixed places as piece by piece.
                if let Some(fixed) = layout.read_full_width(text.as_bytes()) {
                    full_width += 1;
                    assert_eq!(fixed, layout.read_pieces(text.as_bytes()), "{text:?}");
                }
                if let Some(ms) = layout.read(&text) {
                    read_here += 1;
                    assert_eq!(
                        Some(ms),
                        by_chrono(&items, &text, true, chrono_tz::UTC),
                        "{pattern} {text:?}"
                    );
                }
            }
            // Most well-formed texts are read here; the rest were compared by chrono alone.
            assert!(read_here > 5_000, "{pattern}: {read_here} read here");
            assert!(full_width > 5_000, "{pattern}: {full_width} of full width");
        }
    }

    #[test]
    fn nginx_times_and_what_is_left_to_chrono() {
        let items: Vec<Item> = StrftimeItems::new("%d/%b/%Y:%H:%M:%S %z").parse().unwrap();
        let layout = SimpleLayout::of(&items).unwrap();
        // 2026-11-28T09:00:01Z
        assert_eq!(
            layout.read("28/Nov/2026:10:00:01 +0100"),
            Some(1_795_856_401_000)
        );
        assert_eq!(
            layout.read("29/Feb/2024:00:00:00 -0000"),
            Some(1_709_164_800_000)
        );
        for left in [
            "29/Feb/2026:00:00:00 +0000",
            "28/Nov/2026:23:59:60 +0000",
            "28/Nov/2026:10:00:01 +01:00",
        ] {
            assert_eq!(layout.read(left), None, "{left}");
        }
        // Not simple: without an offset, with a fraction, a field twice.
        for pattern in [
            "%d/%b/%Y:%H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.3f%z",
            "%d %d/%b/%Y:%H:%M:%S %z",
        ] {
            let items: Vec<Item> = StrftimeItems::new(pattern).parse().unwrap();
            assert_eq!(SimpleLayout::of(&items), None, "{pattern}");
        }
    }
}
