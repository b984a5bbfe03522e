//! Allocation-free JSON access shared by the venue parsers: a reusable simd-json tape and
//! helpers that read fields straight into [`Decimal`]s and integers.

use simd_json::prelude::*;
use simd_json::tape::{Tape, Value};

use crate::model::Decimal;

use super::ParseError;

/// A simd-json parser whose buffers and tape are kept between frames, so parsing allocates
/// nothing once the largest frame has been seen.
pub struct JsonScratch {
    buffers: simd_json::Buffers,
    tape: Option<Tape<'static>>,
}

impl Default for JsonScratch {
    fn default() -> Self {
        JsonScratch::new()
    }
}

impl JsonScratch {
    /// Scratch sized for frames up to 32 KiB (larger frames grow it once).
    pub fn new() -> JsonScratch {
        JsonScratch {
            buffers: simd_json::Buffers::new(32 * 1024),
            tape: Some(Tape::null().reset()),
        }
    }

    /// Parses `frame` (modified in place: strings are unescaped there) and hands the root value
    /// to `f`.
    ///
    /// # Errors
    /// [`ParseError::Json`] when `frame` is not valid JSON; otherwise what `f` returns.
    pub fn parse<R>(
        &mut self,
        frame: &mut [u8],
        f: impl FnOnce(Value<'_, '_>) -> Result<R, ParseError>,
    ) -> Result<R, ParseError> {
        let mut tape: Tape<'_> = match self.tape.take() {
            Some(t) => t.reset(),
            None => Tape::null().reset(),
        };
        let result = match simd_json::fill_tape(frame, &mut self.buffers, &mut tape) {
            Ok(()) => f(tape.as_value()),
            Err(_) => Err(ParseError::Json),
        };
        self.tape = Some(tape.reset());
        result
    }
}

/// Reads a decimal from a JSON string (`"0.35"`) or number (`0.35`, via its shortest text).
///
/// # Errors
/// [`ParseError::BadNumber`] for bad text or a value out of range, [`ParseError::Schema`] for
/// another JSON type.
#[inline]
pub fn decimal(v: Value<'_, '_>) -> Result<Decimal, ParseError> {
    if let Some(s) = v.as_str() {
        return Decimal::parse(s.as_bytes()).map_err(ParseError::BadNumber);
    }
    if let Some(i) = v.as_i64() {
        return Ok(Decimal::new(i, 0));
    }
    if let Some(u) = v.as_u64() {
        return i64::try_from(u)
            .map(|i| Decimal::new(i, 0))
            .map_err(|_| ParseError::BadNumber(crate::model::DecimalError::Overflow));
    }
    if let Some(f) = v.as_f64() {
        return Decimal::from_f64(f).map_err(ParseError::BadNumber);
    }
    Err(ParseError::Schema)
}

/// Reads field `key` of object `v` as a decimal.
///
/// # Errors
/// [`ParseError::MissingField`] when absent; see [`decimal`].
#[inline]
pub fn decimal_field(v: Value<'_, '_>, key: &'static str) -> Result<Decimal, ParseError> {
    decimal(v.get(key).ok_or(ParseError::MissingField(key))?)
}

/// Reads field `key` as a decimal when present and not null or empty text.
///
/// # Errors
/// See [`decimal`].
#[inline]
pub fn opt_decimal_field(v: Value<'_, '_>, key: &str) -> Result<Option<Decimal>, ParseError> {
    match v.get(key) {
        None => Ok(None),
        Some(x) if x.is_null() => Ok(None),
        Some(x) if x.as_str() == Some("") => Ok(None),
        Some(x) => decimal(x).map(Some),
    }
}

/// Reads an unsigned integer from a JSON number or a numeric string (`"1652459223003"`).
///
/// # Errors
/// [`ParseError::BadNumber`] or [`ParseError::Schema`].
#[inline]
pub fn uint(v: Value<'_, '_>) -> Result<u64, ParseError> {
    if let Some(u) = v.as_u64() {
        return Ok(u);
    }
    if let Some(s) = v.as_str() {
        return parse_u64(s.as_bytes());
    }
    Err(ParseError::Schema)
}

/// Reads a signed integer from a JSON number or a numeric string.
///
/// # Errors
/// [`ParseError::BadNumber`] or [`ParseError::Schema`].
#[inline]
pub fn int(v: Value<'_, '_>) -> Result<i64, ParseError> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    if let Some(s) = v.as_str() {
        let b = s.as_bytes();
        if let Some(rest) = b.strip_prefix(b"-") {
            let u = parse_u64(rest)?;
            return i64::try_from(u)
                .map(|x| -x)
                .map_err(|_| ParseError::BadNumber(crate::model::DecimalError::Overflow));
        }
        let u = parse_u64(b)?;
        return i64::try_from(u)
            .map_err(|_| ParseError::BadNumber(crate::model::DecimalError::Overflow));
    }
    Err(ParseError::Schema)
}

/// Field `key` as an unsigned integer.
///
/// # Errors
/// [`ParseError::MissingField`], or see [`uint`].
#[inline]
pub fn uint_field(v: Value<'_, '_>, key: &'static str) -> Result<u64, ParseError> {
    uint(v.get(key).ok_or(ParseError::MissingField(key))?)
}

/// Field `key` as a signed integer.
///
/// # Errors
/// [`ParseError::MissingField`], or see [`int`].
#[inline]
pub fn int_field(v: Value<'_, '_>, key: &'static str) -> Result<i64, ParseError> {
    int(v.get(key).ok_or(ParseError::MissingField(key))?)
}

/// Field `key` as a string.
///
/// # Errors
/// [`ParseError::MissingField`] when absent or not a string.
#[inline]
pub fn str_field<'i>(v: Value<'_, 'i>, key: &'static str) -> Result<&'i str, ParseError> {
    v.get(key)
        .and_then(|x| x.into_string())
        .ok_or(ParseError::MissingField(key))
}

/// Looks up several fields of object `v` in one pass over its entries; `out[i]` is the value
/// of `keys[i]`, `None` when absent (or when `v` is not an object). simd-json's `get` scans
/// the entries once per key and compares with a library call; venue keys are 1-20 bytes, so
/// one pass with inline comparisons is several times cheaper on 10-field messages.
#[inline]
pub fn fields<'t, 'i, const N: usize>(
    v: Value<'t, 'i>,
    keys: [&str; N],
) -> [Option<Value<'t, 'i>>; N] {
    let mut out = [None; N];
    let Some(obj) = v.as_object() else {
        return out;
    };
    let mut found = 0;
    for (k, val) in obj.iter() {
        let k = k.as_bytes();
        for (i, want) in keys.iter().enumerate() {
            let want = want.as_bytes();
            if k.len() == want.len() && out[i].is_none() && k.iter().zip(want).all(|(a, b)| a == b)
            {
                out[i] = Some(val);
                found += 1;
                break;
            }
        }
        if found == N {
            break;
        }
    }
    out
}

/// A required field from a [`fields`] result.
///
/// # Errors
/// [`ParseError::MissingField`] naming `key`.
#[inline]
pub fn required<'t, 'i>(
    v: Option<Value<'t, 'i>>,
    key: &'static str,
) -> Result<Value<'t, 'i>, ParseError> {
    v.ok_or(ParseError::MissingField(key))
}

fn parse_u64(b: &[u8]) -> Result<u64, ParseError> {
    if b.is_empty() {
        return Err(ParseError::BadNumber(crate::model::DecimalError::Empty));
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return Err(ParseError::BadNumber(crate::model::DecimalError::Invalid));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
            .ok_or(ParseError::BadNumber(crate::model::DecimalError::Overflow))?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_without_losing_digits() {
        let mut scratch = JsonScratch::new();
        let mut frame =
            br#"{"p":"0.35210000","n":0.0015,"i":600859605926,"s":"1652459223003","x":"-5"}"#
                .to_vec();
        scratch
            .parse(&mut frame, |v| {
                assert_eq!(decimal_field(v, "p")?, Decimal::new(35210000, 8));
                assert_eq!(decimal_field(v, "n")?, Decimal::new(15, 4));
                assert_eq!(uint_field(v, "i")?, 600859605926);
                assert_eq!(uint_field(v, "s")?, 1652459223003);
                assert_eq!(int_field(v, "x")?, -5);
                assert_eq!(decimal_field(v, "zz"), Err(ParseError::MissingField("zz")));
                Ok(())
            })
            .unwrap();
        let mut frame = br#"{"a":1,"bb":"x","c":[1],"a2":2}"#.to_vec();
        scratch
            .parse(&mut frame, |v| {
                let [a, c, missing, bb] = fields(v, ["a", "c", "zz", "bb"]);
                assert_eq!(uint(a.unwrap())?, 1);
                assert!(c.unwrap().is_array());
                assert!(missing.is_none());
                assert_eq!(bb.unwrap().as_str(), Some("x"));
                let [x] = fields(a.unwrap(), ["a"]);
                assert!(x.is_none(), "not an object");
                Ok(())
            })
            .unwrap();
        let mut bad = b"{\"a\":".to_vec();
        assert_eq!(scratch.parse(&mut bad, |_| Ok(())), Err(ParseError::Json));
    }
}
