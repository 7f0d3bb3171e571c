//! [`SqlValue`]s to and from PostgreSQL's binary wire formats.
//!
//! tokio-postgres exchanges every value in PostgreSQL's binary format; this
//! module encodes parameters into it and decodes result cells out of it.
//! postgres-protocol reads and writes the binary framing of the types it
//! knows, and the uuid crate and std the uuid and IP address text. The rest
//! is done here, where a library would lose information: numeric (any number
//! of digits, `NaN`, infinities), the calendar and text forms of dates and
//! times (4713 BC to 5874897 AD, `infinity`, `24:00:00`), JSON text exactly
//! as the server sent it, and the text forms of the other types. The text
//! forms are documented in the crate root.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf as _, BufMut as _, BytesMut};
use fallible_iterator::FallibleIterator as _;
use postgres_protocol::types::{self as wire, ArrayDimension, ArrayValues};
use tokio_postgres::types::{Kind, Type};
use trellis_protocol::contracts::sqldb::SqlValue;
use uuid::Uuid;

/// OIDs of the built-in types this module knows. They are fixed in
/// PostgreSQL's catalog (`pg_type.dat`) and never change between versions.
pub(crate) mod oid {
    #![allow(missing_docs)]
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const XID: u32 = 28;
    pub const CID: u32 = 29;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const MACADDR8: u32 = 774;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const RECORD: u32 = 2249;
    pub const VOID: u32 = 2278;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const XID8: u32 = 5069;
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;

/// Largest absolute decimal exponent accepted in a numeric parameter
/// (`1e1000`), matching PostgreSQL's own limit on numeric input.
const MAX_NUMERIC_EXPONENT: i64 = 1000;

// ---------------------------------------------------------------------------
// Reading binary values without ever panicking. postgres-protocol
// (`wire`) reads the types it knows; the few it does not (numeric,
// interval, timetz, records, jsonb) are read with `bytes`' checked
// `try_get_*`, which fail on a short buffer instead of panicking.

/// What postgres-protocol's readers fail with; also used here so that `?`
/// works on its results, on `bytes`' and on messages alike.
type WireError = Box<dyn StdError + Sync + Send>;

/// A length-prefixed value inside a record, `None` for SQL NULL (length -1).
fn nullable<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, WireError> {
    let Ok(len) = usize::try_from(buf.try_get_i32()?) else {
        return Ok(None);
    };
    let (value, rest) = buf
        .split_at_checked(len)
        .ok_or_else(|| format!("truncated value: {len} bytes expected, {} left", buf.len()))?;
    *buf = rest;
    Ok(Some(value))
}

/// Fails if bytes are left over after a value was read.
fn finish(rest: &[u8]) -> Result<(), WireError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("{} unexpected trailing bytes", rest.len()).into())
    }
}

fn utf8(raw: &[u8]) -> Result<String, WireError> {
    Ok(wire::text_from_sql(raw)?.to_owned())
}

// ---------------------------------------------------------------------------
// Decoding result cells.

/// Decodes one result cell of type `ty` (`None` is SQL NULL).
///
/// Types with a case of their own in [`SqlValue`] map to it; other types
/// this module can render come back as [`SqlValue::Text`] holding
/// PostgreSQL's text output; the rest are an error naming the type.
pub(crate) fn decode(ty: &Type, raw: Option<&[u8]>) -> Result<SqlValue, String> {
    match raw {
        None => Ok(SqlValue::Null),
        Some(raw) => decode_value(ty, raw).map_err(|e| e.to_string()),
    }
}

fn decode_value(ty: &Type, raw: &[u8]) -> Result<SqlValue, WireError> {
    if let Kind::Domain(base) = ty.kind() {
        return decode_value(base, raw);
    }
    Ok(match ty.oid() {
        oid::BOOL => SqlValue::Bool(wire::bool_from_sql(raw)?),
        oid::INT2 => SqlValue::Int2(wire::int2_from_sql(raw)?),
        oid::INT4 => SqlValue::Int4(wire::int4_from_sql(raw)?),
        oid::INT8 => SqlValue::Int8(wire::int8_from_sql(raw)?),
        oid::FLOAT4 => SqlValue::Float4(wire::float4_from_sql(raw)?),
        oid::FLOAT8 => SqlValue::Float8(wire::float8_from_sql(raw)?),
        oid::NUMERIC => SqlValue::Numeric(numeric_text(raw)?),
        oid::BYTEA => SqlValue::Bytea(wire::bytea_from_sql(raw).to_vec()),
        oid::UUID => SqlValue::Uuid(uuid_text(raw)?),
        oid::DATE => SqlValue::Date(date_text(raw)?),
        oid::TIME => SqlValue::Time(time_text(raw)?),
        oid::TIMESTAMP => SqlValue::Timestamp(timestamp_text(raw, false)?),
        oid::TIMESTAMPTZ => SqlValue::Timestamptz(timestamp_text(raw, true)?),
        oid::JSON => SqlValue::Json(utf8(raw)?),
        oid::JSONB => SqlValue::Jsonb(jsonb_text(raw)?),
        _ => SqlValue::Text(text_form(ty, raw)?),
    })
}

/// Whether values of `ty` can be decoded (by [`decode`]) at all; checked
/// once per statement so that an unsupported column fails before any row.
pub(crate) fn can_decode(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(base) | Kind::Array(base) => can_decode(base),
        Kind::Enum(_) => true,
        Kind::Composite(fields) => fields.iter().all(|f| can_decode(f.type_())),
        _ => {
            matches!(
                ty.oid(),
                oid::BOOL
                    | oid::INT2
                    | oid::INT4
                    | oid::INT8
                    | oid::FLOAT4
                    | oid::FLOAT8
                    | oid::NUMERIC
                    | oid::BYTEA
                    | oid::UUID
                    | oid::DATE
                    | oid::TIME
                    | oid::TIMESTAMP
                    | oid::TIMESTAMPTZ
                    | oid::JSON
                    | oid::JSONB
                    | oid::TEXT
                    | oid::VARCHAR
                    | oid::BPCHAR
                    | oid::NAME
                    | oid::UNKNOWN
                    | oid::XML
                    | oid::CHAR
                    | oid::OID
                    | oid::XID
                    | oid::CID
                    | oid::XID8
                    | oid::TIMETZ
                    | oid::INTERVAL
                    | oid::INET
                    | oid::CIDR
                    | oid::MACADDR
                    | oid::MACADDR8
                    | oid::BIT
                    | oid::VARBIT
                    // Anonymous records carry their field types in each value.
                    | oid::RECORD
                    | oid::VOID
            ) || is_citext(ty)
        }
    }
}

fn is_citext(ty: &Type) -> bool {
    matches!(ty.kind(), Kind::Simple) && ty.name() == "citext"
}

/// The message for a column whose type has no mapping.
pub(crate) fn unsupported_column(name: &str, ty: &Type) -> String {
    format!(
        "column \"{name}\" has PostgreSQL type {}, which this provider cannot return; \
         cast it to text in the statement (e.g. `{name}::text`)",
        ty.name()
    )
}

/// The text of a value of `ty` as PostgreSQL prints it, used for types
/// without a [`SqlValue`] case of their own, and for array elements and
/// composite fields. Date and time values use the ISO-8601 forms of their
/// [`SqlValue`] cases instead of the session's `DateStyle`.
fn text_form(ty: &Type, raw: &[u8]) -> Result<String, WireError> {
    match ty.kind() {
        Kind::Domain(base) => return text_form(base, raw),
        Kind::Enum(_) => return utf8(raw),
        Kind::Array(element) => return array_text(element, raw),
        Kind::Composite(fields) => {
            let types: Vec<&Type> = fields.iter().map(|f| f.type_()).collect();
            return composite_text(Some(&types), raw);
        }
        _ => {}
    }
    match ty.oid() {
        oid::BOOL => Ok(if wire::bool_from_sql(raw)? { "t" } else { "f" }.to_owned()),
        oid::INT2 => Ok(wire::int2_from_sql(raw)?.to_string()),
        oid::INT4 => Ok(wire::int4_from_sql(raw)?.to_string()),
        oid::INT8 => Ok(wire::int8_from_sql(raw)?.to_string()),
        oid::FLOAT4 => Ok(float_text(f64::from(wire::float4_from_sql(raw)?), true)),
        oid::FLOAT8 => Ok(float_text(wire::float8_from_sql(raw)?, false)),
        oid::NUMERIC => numeric_text(raw),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN | oid::XML => utf8(raw),
        oid::JSON => utf8(raw),
        oid::JSONB => jsonb_text(raw),
        oid::BYTEA => {
            let bytes = wire::bytea_from_sql(raw);
            let mut s = String::with_capacity(2 + bytes.len() * 2);
            s.push_str("\\x");
            for b in bytes {
                let _ = write!(s, "{b:02x}");
            }
            Ok(s)
        }
        oid::UUID => uuid_text(raw),
        oid::DATE => date_text(raw),
        oid::TIME => time_text(raw),
        oid::TIMESTAMP => timestamp_text(raw, false),
        oid::TIMESTAMPTZ => timestamp_text(raw, true),
        oid::TIMETZ => timetz_text(raw),
        oid::CHAR => {
            let b = wire::char_from_sql(raw)?.cast_unsigned();
            Ok(match b {
                0 => String::new(),
                1..=127 => char::from(b).to_string(),
                _ => format!("\\{b:03o}"),
            })
        }
        oid::OID | oid::XID | oid::CID => Ok(wire::oid_from_sql(raw)?.to_string()),
        // An unsigned 64-bit integer, laid out as pg_lsn is.
        oid::XID8 => Ok(wire::lsn_from_sql(raw)?.to_string()),
        oid::INTERVAL => interval_text(raw),
        oid::INET | oid::CIDR => inet_text(raw, ty.oid() == oid::CIDR),
        oid::MACADDR => Ok(mac_text(&wire::macaddr_from_sql(raw)?)),
        // postgres-protocol reads only the 6-byte macaddr.
        oid::MACADDR8 => match raw.len() {
            8 => Ok(mac_text(raw)),
            n => Err(format!("a macaddr8 has 8 bytes, not {n}").into()),
        },
        oid::BIT | oid::VARBIT => {
            let bits = wire::varbit_from_sql(raw)?;
            let bytes = bits.bytes();
            Ok((0..bits.len())
                .map(|i| {
                    let byte = bytes.get(i / 8).copied().unwrap_or(0);
                    if byte & (0x80 >> (i % 8)) != 0 {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect())
        }
        oid::RECORD => composite_text(None, raw),
        // What `SELECT pg_sleep(1)` and other void functions return.
        oid::VOID => Ok(String::new()),
        _ if is_citext(ty) => utf8(raw),
        _ => Err(format!(
            "PostgreSQL type {} has no mapping in this provider",
            ty.name()
        )
        .into()),
    }
}

fn mac_text(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// jsonb's binary form is a version byte (1) and the JSON text.
/// postgres-protocol has no jsonb reader; tokio-postgres' `with-serde_json`
/// would parse and re-serialise the text, losing its exact form.
fn jsonb_text(raw: &[u8]) -> Result<String, WireError> {
    match raw.split_first() {
        Some((1, json)) => utf8(json),
        Some((version, _)) => Err(format!("unknown jsonb format version {version}").into()),
        None => Err("empty jsonb value".into()),
    }
}

fn uuid_text(raw: &[u8]) -> Result<String, WireError> {
    Ok(Uuid::from_bytes(wire::uuid_from_sql(raw)?)
        .hyphenated()
        .to_string())
}

// Kept by hand: std's float Display never uses an exponent (`1e20` prints
// all 21 digits), so it would not match PostgreSQL's text.

/// A float as PostgreSQL prints it (with the default `extra_float_digits`
/// of 1): the shortest digits that read back exactly, in fixed notation
/// for decimal exponents from -4 up to 14 (float4: 5), else scientific with
/// a signed exponent of at least two digits (`1e+20`, `1.5e-05`).
fn float_text(v: f64, is_float4: bool) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits.
    let sci = if is_float4 {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let max_fixed = if is_float4 { 6 } else { 15 };
    let mut out = String::from(sign);
    if (-4..max_fixed).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            for _ in 0..(-exponent - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = usize::try_from(exponent + 1).unwrap_or(0);
            if digits.len() > int_len {
                let (int, frac) = digits.split_at(int_len);
                out.push_str(int);
                out.push('.');
                out.push_str(frac);
            } else {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            }
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    }
    out
}

// ---------------------------------------------------------------------------
// numeric

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

// Kept by hand: rust_decimal (tokio-postgres' `db-tokio-postgres`) was
// considered, and would lose NaN, ±Infinity and every digit past the 28th.

/// A binary numeric as plain decimal text, scale kept, as PostgreSQL prints it.
fn numeric_text(mut raw: &[u8]) -> Result<String, WireError> {
    let ndigits = usize::try_from(raw.try_get_i16()?).map_err(|_| "negative numeric length")?;
    let weight = i64::from(raw.try_get_i16()?);
    let sign = raw.try_get_u16()?;
    let dscale = usize::from(raw.try_get_u16()?);
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let d = raw.try_get_i16()?;
        if !(0..10_000).contains(&d) {
            return Err(format!("invalid numeric digit {d}").into());
        }
        digits.push(d);
    }
    finish(raw)?;
    match sign {
        NUMERIC_NAN => return Ok("NaN".to_owned()),
        NUMERIC_PINF => return Ok("Infinity".to_owned()),
        NUMERIC_NINF => return Ok("-Infinity".to_owned()),
        NUMERIC_POS | NUMERIC_NEG => {}
        other => return Err(format!("invalid numeric sign {other:#x}").into()),
    }
    let group = |i: i64| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(out, "{}", group(i));
            } else {
                let _ = write!(out, "{:04}", group(i));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", group(i));
            i += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

/// Parses PostgreSQL numeric input (`-1234.5600`, `1.5e3`, `NaN`,
/// `Infinity`) into the binary format, exactly.
fn numeric_binary(text: &str) -> Result<Vec<u8>, String> {
    let s = text.trim();
    let special = |sign: u16| {
        let mut out = Vec::with_capacity(8);
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        out
    };
    match s.to_ascii_lowercase().as_str() {
        "nan" => return Ok(special(NUMERIC_NAN)),
        "infinity" | "+infinity" | "inf" | "+inf" => return Ok(special(NUMERIC_PINF)),
        "-infinity" | "-inf" => return Ok(special(NUMERIC_NINF)),
        _ => {}
    }
    let bad =
        || format!("{text:?} is not a decimal number (e.g. \"-1234.5600\", \"1.5e3\", \"NaN\")");
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let exponent: i64 = match exponent {
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            e.parse().map_err(|_| bad())?
        }
        None => 0,
    };
    if exponent.abs() > MAX_NUMERIC_EXPONENT {
        return Err(format!(
            "{text:?}: the exponent is out of range (at most ±{MAX_NUMERIC_EXPONENT})"
        ));
    }
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| bad())?;
    let dscale = (frac_len - exponent).max(0);
    let dscale = u16::try_from(dscale)
        .ok()
        .filter(|d| *d <= 0x3FFF)
        .ok_or_else(|| format!("{text:?} has too many digits after the decimal point"))?;
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    // Decimal exponent of the first digit + 1: digits left of the point.
    let mut point = i64::try_from(int_part.len()).map_err(|_| bad())? + exponent;
    let leading = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..leading);
    point -= i64::try_from(leading).map_err(|_| bad())?;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let mut out = Vec::new();
    if digits.is_empty() {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(NUMERIC_POS);
        out.put_u16(dscale);
        return Ok(out);
    }
    let len = i64::try_from(digits.len()).map_err(|_| bad())?;
    let first_exp = point - 1;
    let last_exp = point - len;
    let weight = first_exp.div_euclid(4);
    let last_group = last_exp.div_euclid(4);
    let ngroups = usize::try_from(weight - last_group + 1).map_err(|_| bad())?;
    let mut groups = vec![0i16; ngroups];
    for (k, d) in digits.iter().enumerate() {
        let e = first_exp - i64::try_from(k).map_err(|_| bad())?;
        let g = usize::try_from(weight - e.div_euclid(4)).map_err(|_| bad())?;
        let scale = 10i16.pow(u32::try_from(e.rem_euclid(4)).map_err(|_| bad())?);
        if let Some(slot) = groups.get_mut(g) {
            *slot += i16::from(*d) * scale;
        }
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let ndigits =
        i16::try_from(groups.len()).map_err(|_| format!("{text:?} has too many digits"))?;
    let weight = i16::try_from(weight).map_err(|_| format!("{text:?} is out of range"))?;
    out.put_i16(ndigits);
    out.put_i16(weight);
    out.put_u16(if negative { NUMERIC_NEG } else { NUMERIC_POS });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Dates and times. Days and microseconds are counted from 2000-01-01.
//
// The calendar arithmetic and text forms are kept by hand: chrono
// (tokio-postgres' `with-chrono-0_4`) was considered, and would lose dates
// past 262143 AD (PostgreSQL's reach 5874897 AD), `infinity` and `24:00:00`,
// so it could only serve part of the range beside this code.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD` for a day counted from 2000-01-01; years before 1 AD are
/// astronomical (`0000` is 1 BC, `-0001` is 2 BC).
fn write_date(out: &mut String, pg_days: i64) {
    let (year, month, day) = civil_from_days(pg_days + PG_EPOCH_DAYS);
    if year < 0 {
        let _ = write!(out, "-{:04}-{month:02}-{day:02}", -year);
    } else {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    }
}

/// `HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped.
fn write_time(out: &mut String, micros: i64) {
    let (hours, rest) = (micros / USECS_PER_HOUR, micros % USECS_PER_HOUR);
    let (minutes, rest) = (rest / USECS_PER_MINUTE, rest % USECS_PER_MINUTE);
    let (seconds, fraction) = (rest / USECS_PER_SEC, rest % USECS_PER_SEC);
    let _ = write!(out, "{hours:02}:{minutes:02}:{seconds:02}");
    write_fraction(out, fraction);
}

fn write_fraction(out: &mut String, fraction: i64) {
    if fraction != 0 {
        let digits = format!("{:06}", fraction.unsigned_abs());
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

fn date_text(raw: &[u8]) -> Result<String, WireError> {
    let days = wire::date_from_sql(raw)?;
    Ok(match days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        _ => {
            let mut s = String::with_capacity(10);
            write_date(&mut s, i64::from(days));
            s
        }
    })
}

fn time_text(raw: &[u8]) -> Result<String, WireError> {
    let micros = wire::time_from_sql(raw)?;
    if !(0..=USECS_PER_DAY).contains(&micros) {
        return Err(format!("time of day out of range: {micros} µs").into());
    }
    let mut s = String::with_capacity(15);
    write_time(&mut s, micros);
    Ok(s)
}

/// timetz (a time and a zone) has no reader in postgres-protocol.
fn timetz_text(mut raw: &[u8]) -> Result<String, WireError> {
    let micros = raw.try_get_i64()?;
    // Seconds *west* of UTC.
    let zone = raw.try_get_i32()?;
    finish(raw)?;
    if !(0..=USECS_PER_DAY).contains(&micros) {
        return Err(format!("time of day out of range: {micros} µs").into());
    }
    let mut s = String::with_capacity(24);
    write_time(&mut s, micros);
    let abs = zone.unsigned_abs();
    let (hours, minutes, seconds) = (abs / 3600, abs / 60 % 60, abs % 60);
    s.push(if zone <= 0 { '+' } else { '-' });
    let _ = write!(s, "{hours:02}");
    if seconds != 0 {
        let _ = write!(s, ":{minutes:02}:{seconds:02}");
    } else if minutes != 0 {
        let _ = write!(s, ":{minutes:02}");
    }
    Ok(s)
}

fn timestamp_text(raw: &[u8], utc: bool) -> Result<String, WireError> {
    let micros = wire::timestamp_from_sql(raw)?;
    Ok(match micros {
        i64::MAX => "infinity".to_owned(),
        i64::MIN => "-infinity".to_owned(),
        _ => {
            let mut s = String::with_capacity(28);
            write_date(&mut s, micros.div_euclid(USECS_PER_DAY));
            s.push('T');
            write_time(&mut s, micros.rem_euclid(USECS_PER_DAY));
            if utc {
                s.push('Z');
            }
            s
        }
    })
}

/// An interval in PostgreSQL's default `postgres` IntervalStyle, e.g.
/// `1 year 2 mons 3 days 04:05:06.5` or `-1 days +02:00:00`. Neither
/// postgres-protocol nor tokio-postgres reads intervals.
fn interval_text(mut raw: &[u8]) -> Result<String, WireError> {
    let time = raw.try_get_i64()?;
    let days = raw.try_get_i32()?;
    let months = raw.try_get_i32()?;
    finish(raw)?;
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        let _ = write!(
            out,
            "{}{}{value} {unit}{}",
            if is_zero { "" } else { " " },
            if is_before && value > 0 { "+" } else { "" },
            if value != 1 { "s" } else { "" }
        );
        is_before = value < 0;
        is_zero = false;
    };
    part(&mut out, i64::from(months / 12), "year");
    part(&mut out, i64::from(months % 12), "mon");
    part(&mut out, i64::from(days), "day");
    let hours = time / USECS_PER_HOUR;
    let minutes = time % USECS_PER_HOUR / USECS_PER_MINUTE;
    let seconds = time % USECS_PER_MINUTE / USECS_PER_SEC;
    let fraction = time % USECS_PER_SEC;
    if is_zero || time != 0 {
        let minus = hours < 0 || minutes < 0 || seconds < 0 || fraction < 0;
        if !is_zero {
            out.push(' ');
        }
        let sign = if minus {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let _ = write!(
            out,
            "{sign}{:02}:{:02}:{:02}",
            hours.unsigned_abs(),
            minutes.unsigned_abs(),
            seconds.unsigned_abs()
        );
        write_fraction(&mut out, fraction);
    }
    Ok(out)
}

/// `inet` / `cidr` as PostgreSQL prints them (`192.168.0.1/24`, `::1`,
/// `10.0.0.0/8` for a cidr, whose netmask always shows).
fn inet_text(raw: &[u8], is_cidr: bool) -> Result<String, WireError> {
    let inet = wire::inet_from_sql(raw)?;
    let bits = inet.netmask();
    let (mut s, max_bits) = match inet.addr() {
        IpAddr::V4(addr) => (addr.to_string(), 32),
        IpAddr::V6(addr) => (ipv6_text(addr), 128),
    };
    if is_cidr || bits != max_bits {
        let _ = write!(s, "/{bits}");
    }
    Ok(s)
}

/// IPv6 text as PostgreSQL's `inet_net_ntop` writes it. std's `Display`
/// writes the same (first longest run of zero groups as `::`, `::ffff:1.2.3.4`)
/// except for IPv4-compatible addresses, which PostgreSQL writes `::1.2.3.4`
/// and std `::102:304`.
fn ipv6_text(addr: Ipv6Addr) -> String {
    match addr.octets() {
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d] if (a, b) != (0, 0) => {
            format!("::{}", Ipv4Addr::new(a, b, c, d))
        }
        _ => addr.to_string(),
    }
}

fn needs_quotes(s: &str, specials: &[char]) -> bool {
    s.is_empty()
        || s.chars().any(|c| {
            specials.contains(&c) || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
        })
}

/// An array in PostgreSQL's text form: `{1,2,NULL}`, `{{1,2},{3,4}}`,
/// `[0:1]={a,b}` for lower bounds other than 1.
fn array_text(element: &Type, raw: &[u8]) -> Result<String, WireError> {
    let array = wire::array_from_sql(raw)?;
    let dims: Vec<ArrayDimension> = array.dimensions().collect()?;
    let mut out = String::new();
    if dims.iter().any(|d| d.lower_bound != 1) {
        for d in &dims {
            let upper = i64::from(d.lower_bound) + i64::from(d.len) - 1;
            let _ = write!(out, "[{}:{upper}]", d.lower_bound);
        }
        out.push('=');
    }
    let mut values = array.values();
    if dims.is_empty() {
        out.push_str("{}");
    } else {
        write_array_level(&mut out, &dims, element, &mut values)?;
    }
    // Also checks that no bytes follow the last element.
    if values.next()?.is_some() {
        return Err("more array elements than its dimensions hold".into());
    }
    Ok(out)
}

fn write_array_level(
    out: &mut String,
    dims: &[ArrayDimension],
    element: &Type,
    values: &mut ArrayValues<'_>,
) -> Result<(), WireError> {
    let Some((dim, inner)) = dims.split_first() else {
        return Ok(());
    };
    out.push('{');
    for i in 0..dim.len {
        if i > 0 {
            out.push(',');
        }
        if inner.is_empty() {
            match values
                .next()?
                .ok_or("fewer array elements than its dimensions hold")?
            {
                None => out.push_str("NULL"),
                Some(raw) => {
                    let text = text_form(element, raw)?;
                    if needs_quotes(&text, &['{', '}', ',', '"', '\\'])
                        || text.eq_ignore_ascii_case("NULL")
                    {
                        out.push('"');
                        for c in text.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        } else {
            write_array_level(out, inner, element, values)?;
        }
    }
    out.push('}');
    Ok(())
}

/// A composite value in PostgreSQL's text form, `(1,"a b",)`. `types` are
/// the field types of a named composite type; an anonymous record carries
/// built-in field types in the value itself. Read by hand: postgres-protocol
/// has no record reader, and tokio-postgres reads composites only into
/// structs known at compile time.
fn composite_text(types: Option<&[&Type]>, mut raw: &[u8]) -> Result<String, WireError> {
    let count = usize::try_from(raw.try_get_i32()?).map_err(|_| "negative field count")?;
    let mut out = String::from("(");
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        let field_oid = raw.try_get_u32()?;
        let value = nullable(&mut raw)?;
        let field_type = match types.and_then(|t| t.get(i)) {
            Some(t) => (*t).clone(),
            None => Type::from_oid(field_oid).ok_or_else(|| {
                format!(
                    "a record field has type oid {field_oid}, which this provider cannot return"
                )
            })?,
        };
        if let Some(raw) = value {
            let text = text_form(&field_type, raw)?;
            if needs_quotes(&text, &['"', '\\', '(', ')', ',']) {
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push(c);
                    }
                    out.push(c);
                }
                out.push('"');
            } else {
                out.push_str(&text);
            }
        }
    }
    finish(raw)?;
    out.push(')');
    Ok(out)
}

// ---------------------------------------------------------------------------
// Parsing the text forms of parameters.

/// Parses `N` ASCII digits at the start of `s`.
fn take_digits<'a>(
    s: &'a str,
    min: usize,
    max: usize,
    what: &str,
) -> Result<(i64, &'a str), String> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n < min || n > max {
        return Err(format!("expected {what}"));
    }
    let (digits, rest) = s.split_at(n);
    Ok((
        digits.parse().map_err(|_| format!("expected {what}"))?,
        rest,
    ))
}

fn expect_char<'a>(s: &'a str, c: char, what: &str) -> Result<&'a str, String> {
    s.strip_prefix(c).ok_or_else(|| format!("expected {what}"))
}

/// `[-]YYYY-MM-DD` → days since 2000-01-01, and what follows.
fn parse_date_prefix(s: &str) -> Result<(i64, &str), String> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (year, s) = take_digits(s, 4, 7, "a year of at least four digits")?;
    let s = expect_char(s, '-', "'-' after the year")?;
    let (month, s) = take_digits(s, 2, 2, "a two-digit month")?;
    let s = expect_char(s, '-', "'-' after the month")?;
    let (day, s) = take_digits(s, 2, 2, "a two-digit day")?;
    let year = if negative { -year } else { year };
    let month = u32::try_from(month).unwrap_or(0);
    let day = u32::try_from(day).unwrap_or(0);
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} does not exist"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!("day {day} does not exist in {year:04}-{month:02}"));
    }
    Ok((days_from_civil(year, month, day) - PG_EPOCH_DAYS, s))
}

/// `HH:MM[:SS[.ffffff]]` → microseconds since midnight (up to `24:00:00`).
fn parse_time_of_day(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (hours, s) = take_digits(s, 2, 2, "a two-digit hour")?;
    let s = expect_char(s, ':', "':' after the hour")?;
    let (minutes, s) = take_digits(s, 2, 2, "two-digit minutes")?;
    let (seconds, micros, s) = match s.strip_prefix(':') {
        Some(s) => {
            let (seconds, s) = take_digits(s, 2, 2, "two-digit seconds")?;
            match s.strip_prefix('.') {
                Some(s) => {
                    let n = s.bytes().take_while(u8::is_ascii_digit).count();
                    if n == 0 || n > 6 {
                        return Err(
                            "expected one to six digits of fractional seconds (microseconds)"
                                .to_owned(),
                        );
                    }
                    let (digits, rest) = s.split_at(n);
                    let padded = format!("{digits:0<6}");
                    (
                        seconds,
                        padded.parse::<i64>().map_err(|e| e.to_string())?,
                        rest,
                    )
                }
                None => (seconds, 0, s),
            }
        }
        None => (0, 0, s),
    };
    if !s.is_empty() {
        return Err(format!("unexpected {s:?} after the time"));
    }
    if hours > 24
        || minutes > 59
        || seconds > 59
        || (hours == 24 && (minutes, seconds, micros) != (0, 0, 0))
    {
        return Err("the time of day is out of range".to_owned());
    }
    Ok(hours * USECS_PER_HOUR + minutes * USECS_PER_MINUTE + seconds * USECS_PER_SEC + micros)
}

/// `Z`, `±HH`, `±HH:MM`, `±HHMM` or `±HH:MM:SS` → seconds east of UTC.
fn parse_offset(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") {
        return Ok(0);
    }
    let bad = || format!("{s:?} is not a UTC offset (Z, +HH, +HH:MM)");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    // Exactly two digits each: `+0130` is hours 01, minutes 30.
    let two = |s: &str| -> Option<(i64, String)> {
        let digits = s
            .get(..2)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
        Some((digits.parse().ok()?, s.get(2..).unwrap_or("").to_owned()))
    };
    let (hours, rest) = two(rest).ok_or_else(bad)?;
    let rest = rest.strip_prefix(':').unwrap_or(&rest).to_owned();
    let (minutes, rest) = if rest.is_empty() {
        (0, rest)
    } else {
        two(&rest).ok_or_else(bad)?
    };
    let rest = rest.strip_prefix(':').unwrap_or(&rest).to_owned();
    let (seconds, rest) = if rest.is_empty() {
        (0, rest)
    } else {
        two(&rest).ok_or_else(bad)?
    };
    if !rest.is_empty() || hours > 15 || minutes > 59 || seconds > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60 + seconds))
}

fn parse_date(s: &str) -> Result<i32, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let (days, rest) =
        parse_date_prefix(t).map_err(|e| format!("{s:?} is not a date YYYY-MM-DD: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{s:?} is not a date YYYY-MM-DD"));
    }
    i32::try_from(days)
        .ok()
        .filter(|d| *d != i32::MAX && *d != i32::MIN)
        .ok_or_else(|| format!("{s:?} is out of range for a date"))
}

fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_of_day(s).map_err(|e| format!("{s:?} is not a time HH:MM:SS[.ffffff]: {e}"))
}

/// A timestamp (`with_offset`: timestamptz) → microseconds since
/// 2000-01-01 UTC.
fn parse_timestamp(s: &str, with_offset: bool) -> Result<i64, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let form = if with_offset {
        "an RFC 3339 timestamp with an offset, e.g. 2024-02-29T13:45:07.25+01:00"
    } else {
        "a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff] without offset"
    };
    let wrap = |e: String| format!("{s:?} is not {form}: {e}");
    let (days, rest) = parse_date_prefix(t).map_err(wrap)?;
    let rest = match rest.chars().next() {
        Some('T' | 't' | ' ') => &rest[1..],
        Some(_) => return Err(wrap("expected 'T' between date and time".to_owned())),
        None if with_offset => return Err(wrap("the time and offset are missing".to_owned())),
        None => "",
    };
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let time = if time.trim().is_empty() && !with_offset && offset.is_none() {
        0
    } else {
        parse_time_of_day(time).map_err(wrap)?
    };
    let offset_secs = match (offset, with_offset) {
        (Some(o), true) => parse_offset(o).map_err(wrap)?,
        (None, true) => return Err(wrap("the UTC offset is missing".to_owned())),
        (Some(_), false) => {
            return Err(wrap(
                "a timestamp without time zone takes no offset (use timestamptz)".to_owned(),
            ));
        }
        (None, false) => 0,
    };
    days.checked_mul(USECS_PER_DAY)
        .and_then(|d| d.checked_add(time))
        .and_then(|d| d.checked_sub(offset_secs * USECS_PER_SEC))
        .filter(|m| *m != i64::MAX && *m != i64::MIN)
        .ok_or_else(|| format!("{s:?} is out of range for a timestamp"))
}

/// 32 hex digits, any case, in braces or not, hyphens allowed between any
/// two digits. The uuid crate reads the digits; its own parser takes hyphens
/// only at the standard positions, so they are checked and dropped first.
fn parse_uuid(s: &str) -> Result<Uuid, String> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(t);
    let bad = || format!("{s:?} is not a UUID (e.g. 67e55044-10b1-426f-9247-bb680e5fe0c8)");
    if t.starts_with('-') || t.ends_with('-') || t.contains("--") {
        return Err(bad());
    }
    t.replace('-', "")
        .parse::<uuid::fmt::Simple>()
        .map(uuid::fmt::Simple::into_uuid)
        .map_err(|_| bad())
}

// ---------------------------------------------------------------------------
// Encoding parameters.

/// Why a parameter could not be bound.
#[derive(Debug, PartialEq)]
pub(crate) enum BindError {
    /// The value's case does not fit the parameter type; `expected` lists
    /// the cases that do.
    Mismatch { expected: &'static str },
    /// The parameter type has no mapping at all.
    Unsupported,
    /// The value fits the type but not its form or range.
    Bad(String),
}

fn mismatch(expected: &'static str) -> BindError {
    BindError::Mismatch { expected }
}

/// The contract's name of a value's case, for messages.
pub(crate) fn case_name(value: &SqlValue) -> &'static str {
    match value {
        SqlValue::Null => "null",
        SqlValue::Bool(_) => "bool",
        SqlValue::Int2(_) => "int2",
        SqlValue::Int4(_) => "int4",
        SqlValue::Int8(_) => "int8",
        SqlValue::Float4(_) => "float4",
        SqlValue::Float8(_) => "float8",
        SqlValue::Numeric(_) => "numeric",
        SqlValue::Text(_) => "text",
        SqlValue::Bytea(_) => "bytea",
        SqlValue::Uuid(_) => "uuid",
        SqlValue::Date(_) => "date",
        SqlValue::Time(_) => "time",
        SqlValue::Timestamp(_) => "timestamp",
        SqlValue::Timestamptz(_) => "timestamptz",
        SqlValue::Json(_) => "json",
        SqlValue::Jsonb(_) => "jsonb",
    }
}

fn int_value(value: &SqlValue) -> Option<i64> {
    match value {
        SqlValue::Int2(v) => Some(i64::from(*v)),
        SqlValue::Int4(v) => Some(i64::from(*v)),
        SqlValue::Int8(v) => Some(*v),
        _ => None,
    }
}

/// The string of any case that carries one.
fn string_value(value: &SqlValue) -> Option<&str> {
    match value {
        SqlValue::Text(s)
        | SqlValue::Numeric(s)
        | SqlValue::Uuid(s)
        | SqlValue::Date(s)
        | SqlValue::Time(s)
        | SqlValue::Timestamp(s)
        | SqlValue::Timestamptz(s)
        | SqlValue::Json(s)
        | SqlValue::Jsonb(s) => Some(s),
        _ => None,
    }
}

fn float_value(value: &SqlValue) -> Option<f64> {
    match value {
        SqlValue::Float4(v) => Some(f64::from(*v)),
        SqlValue::Float8(v) => Some(*v),
        #[allow(clippy::cast_precision_loss)]
        other => int_value(other).map(|i| i as f64),
    }
}

fn int_param<T: TryFrom<i64>>(value: &SqlValue, type_name: &str) -> Result<T, BindError> {
    let v = int_value(value).ok_or(mismatch("int2, int4 or int8"))?;
    T::try_from(v).map_err(|_| BindError::Bad(format!("{v} is out of range for {type_name}")))
}

/// Encodes `value` for a parameter of type `ty` in PostgreSQL's binary
/// format; `None` is SQL NULL.
pub(crate) fn encode(ty: &Type, value: &SqlValue) -> Result<Option<Vec<u8>>, BindError> {
    if matches!(value, SqlValue::Null) {
        return Ok(None);
    }
    let mut out = BytesMut::new();
    encode_value(ty, value, &mut out)?;
    Ok(Some(out.into()))
}

fn encode_value(ty: &Type, value: &SqlValue, out: &mut BytesMut) -> Result<(), BindError> {
    match ty.kind() {
        Kind::Domain(base) => return encode_value(base, value, out),
        Kind::Enum(_) => {
            return match value {
                SqlValue::Text(s) => {
                    wire::text_to_sql(s, out);
                    Ok(())
                }
                _ => Err(mismatch("text (the enum label)")),
            };
        }
        Kind::Simple | Kind::Pseudo => {}
        _ => return Err(BindError::Unsupported),
    }
    let bad = BindError::Bad;
    match ty.oid() {
        oid::BOOL => match value {
            SqlValue::Bool(b) => wire::bool_to_sql(*b, out),
            _ => return Err(mismatch("bool")),
        },
        oid::INT2 => wire::int2_to_sql(int_param(value, "int2")?, out),
        oid::INT4 => wire::int4_to_sql(int_param(value, "int4")?, out),
        oid::INT8 => wire::int8_to_sql(int_param(value, "int8")?, out),
        oid::OID => wire::oid_to_sql(int_param(value, "oid")?, out),
        oid::FLOAT4 => {
            let v = float_value(value).ok_or(mismatch("float4, float8 or an integer"))?;
            #[allow(clippy::cast_possible_truncation)]
            let f = v as f32;
            if f.is_infinite() && v.is_finite() {
                return Err(bad(format!("{v} is out of range for float4")));
            }
            wire::float4_to_sql(f, out);
        }
        oid::FLOAT8 => wire::float8_to_sql(
            float_value(value).ok_or(mismatch("float8, float4 or an integer"))?,
            out,
        ),
        oid::NUMERIC => {
            let text = match value {
                SqlValue::Numeric(s) | SqlValue::Text(s) => s.clone(),
                SqlValue::Float4(f) if f.is_finite() => f.to_string(),
                SqlValue::Float8(f) if f.is_finite() => f.to_string(),
                SqlValue::Float4(f) => float_text(f64::from(*f), true),
                SqlValue::Float8(f) => float_text(*f, false),
                other => match int_value(other) {
                    Some(i) => i.to_string(),
                    None => return Err(mismatch("numeric, text, an integer or a float")),
                },
            };
            out.put_slice(&numeric_binary(&text).map_err(bad)?);
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN | oid::XML => {
            wire::text_to_sql(
                string_value(value).ok_or(mismatch("text (or any case carrying a string)"))?,
                out,
            );
        }
        _ if is_citext(ty) => wire::text_to_sql(
            string_value(value).ok_or(mismatch("text (or any case carrying a string)"))?,
            out,
        ),
        // The byte itself, or none for the empty string.
        oid::CHAR => match value {
            SqlValue::Text(s) if s.len() <= 1 => wire::text_to_sql(s, out),
            SqlValue::Text(s) => return Err(bad(format!("{s:?} is longer than one byte"))),
            _ => return Err(mismatch("text of one ASCII character")),
        },
        oid::BYTEA => match value {
            SqlValue::Bytea(b) => wire::bytea_to_sql(b, out),
            _ => return Err(mismatch("bytea")),
        },
        oid::UUID => match value {
            SqlValue::Uuid(s) | SqlValue::Text(s) => {
                wire::uuid_to_sql(parse_uuid(s).map_err(bad)?.into_bytes(), out);
            }
            _ => return Err(mismatch("uuid or text")),
        },
        oid::DATE => match value {
            SqlValue::Date(s) | SqlValue::Text(s) => {
                wire::date_to_sql(parse_date(s).map_err(bad)?, out);
            }
            _ => return Err(mismatch("date or text")),
        },
        oid::TIME => match value {
            SqlValue::Time(s) | SqlValue::Text(s) => {
                wire::time_to_sql(parse_time(s).map_err(bad)?, out);
            }
            _ => return Err(mismatch("time or text")),
        },
        oid::TIMESTAMP => match value {
            SqlValue::Timestamp(s) | SqlValue::Text(s) => {
                wire::timestamp_to_sql(parse_timestamp(s, false).map_err(bad)?, out);
            }
            _ => return Err(mismatch("timestamp or text")),
        },
        oid::TIMESTAMPTZ => match value {
            SqlValue::Timestamptz(s) | SqlValue::Text(s) => {
                wire::timestamp_to_sql(parse_timestamp(s, true).map_err(bad)?, out);
            }
            _ => return Err(mismatch("timestamptz or text")),
        },
        oid::JSON => match value {
            SqlValue::Json(s) | SqlValue::Jsonb(s) | SqlValue::Text(s) => wire::text_to_sql(s, out),
            _ => return Err(mismatch("json, jsonb or text")),
        },
        // The version byte, then the text as is (see `jsonb_text`).
        oid::JSONB => match value {
            SqlValue::Json(s) | SqlValue::Jsonb(s) | SqlValue::Text(s) => {
                out.put_u8(1);
                wire::text_to_sql(s, out);
            }
            _ => return Err(mismatch("jsonb, json or text")),
        },
        _ => return Err(BindError::Unsupported),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_oid_table_matches_tokio_postgres() {
        for (oid, ty) in [
            (oid::BOOL, Type::BOOL),
            (oid::BYTEA, Type::BYTEA),
            (oid::CHAR, Type::CHAR),
            (oid::NAME, Type::NAME),
            (oid::INT8, Type::INT8),
            (oid::INT2, Type::INT2),
            (oid::INT4, Type::INT4),
            (oid::TEXT, Type::TEXT),
            (oid::OID, Type::OID),
            (oid::XID, Type::XID),
            (oid::CID, Type::CID),
            (oid::JSON, Type::JSON),
            (oid::XML, Type::XML),
            (oid::CIDR, Type::CIDR),
            (oid::FLOAT4, Type::FLOAT4),
            (oid::FLOAT8, Type::FLOAT8),
            (oid::UNKNOWN, Type::UNKNOWN),
            (oid::MACADDR8, Type::MACADDR8),
            (oid::MACADDR, Type::MACADDR),
            (oid::INET, Type::INET),
            (oid::BPCHAR, Type::BPCHAR),
            (oid::VARCHAR, Type::VARCHAR),
            (oid::DATE, Type::DATE),
            (oid::TIME, Type::TIME),
            (oid::TIMESTAMP, Type::TIMESTAMP),
            (oid::TIMESTAMPTZ, Type::TIMESTAMPTZ),
            (oid::INTERVAL, Type::INTERVAL),
            (oid::TIMETZ, Type::TIMETZ),
            (oid::BIT, Type::BIT),
            (oid::VARBIT, Type::VARBIT),
            (oid::NUMERIC, Type::NUMERIC),
            (oid::RECORD, Type::RECORD),
            (oid::VOID, Type::VOID),
            (oid::UUID, Type::UUID),
            (oid::JSONB, Type::JSONB),
            (oid::XID8, Type::XID8),
        ] {
            assert_eq!(oid, ty.oid(), "{ty}");
        }
    }

    fn numeric_round_trip(input: &str) -> String {
        numeric_text(&numeric_binary(input).unwrap()).unwrap()
    }

    #[test]
    fn numerics_round_trip_exactly_with_their_scale() {
        for s in [
            "0",
            "0.00",
            "1",
            "-1",
            "-1234.5600",
            "10000",
            "9999",
            "0.0001",
            "0.00001",
            "123456789012345678901234567890.123456789012345678901234567890",
            "-0.000000000000000000000000000000000001",
            "100000000000000000000000000000000000000000000000000000000000",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(numeric_round_trip(s), s);
        }
    }

    #[test]
    fn numeric_input_follows_postgresql_rules() {
        assert_eq!(numeric_round_trip("1.5e3"), "1500");
        assert_eq!(numeric_round_trip("1.25e-3"), "0.00125");
        assert_eq!(numeric_round_trip("+007.50"), "7.50");
        assert_eq!(numeric_round_trip(".5"), "0.5");
        assert_eq!(numeric_round_trip("5."), "5");
        assert_eq!(numeric_round_trip("-0"), "0");
        assert_eq!(numeric_round_trip("nan"), "NaN");
        assert_eq!(numeric_round_trip("-inf"), "-Infinity");
        for bad in ["", "-", ".", "1e", "1.2.3", "abc", "1e5000", "1,5", "0x10"] {
            assert!(numeric_binary(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn numeric_binary_matches_postgresql_layout() {
        // 1234.56 is {ndigits 2, weight 0, pos, dscale 2, [1234, 5600]}.
        assert_eq!(
            numeric_binary("1234.56").unwrap(),
            [0, 2, 0, 0, 0, 0, 0, 2, 0x04, 0xD2, 0x15, 0xE0]
        );
        // 0.00001 is {1 digit, weight -2, dscale 5, [1000]}.
        assert_eq!(
            numeric_binary("0.00001").unwrap(),
            [0, 1, 0xFF, 0xFE, 0, 0, 0, 5, 0x03, 0xE8]
        );
    }

    #[test]
    fn calendar_arithmetic_round_trips_over_postgresqls_range() {
        for days in (-2_500_000..2_200_000_000i64).step_by(99_991) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    fn date(s: &str) -> String {
        date_text(&parse_date(s).unwrap().to_be_bytes()).unwrap()
    }

    fn time(s: &str) -> String {
        time_text(&parse_time(s).unwrap().to_be_bytes()).unwrap()
    }

    fn timestamp(s: &str, tz: bool) -> String {
        timestamp_text(&parse_timestamp(s, tz).unwrap().to_be_bytes(), tz).unwrap()
    }

    #[test]
    fn dates_and_times_round_trip_in_iso_8601() {
        for d in [
            "2024-02-29",
            "0001-01-01",
            "0000-12-31",
            "-4713-11-24",
            "5874897-12-31",
            "infinity",
            "-infinity",
        ] {
            assert_eq!(date(d), d);
        }
        for t in ["00:00:00", "13:45:07.25", "23:59:59.999999", "24:00:00"] {
            assert_eq!(time(t), t);
        }
        assert_eq!(time("13:45"), "13:45:00");
        assert_eq!(
            timestamp("2024-02-29T13:45:07.25", false),
            "2024-02-29T13:45:07.25"
        );
        assert_eq!(
            timestamp("2024-02-29 13:45:07", false),
            "2024-02-29T13:45:07"
        );
        assert_eq!(timestamp("2024-02-29", false), "2024-02-29T00:00:00");
        assert_eq!(
            timestamp("2024-02-29T13:45:07.25+01:00", true),
            "2024-02-29T12:45:07.25Z"
        );
        assert_eq!(
            timestamp("2024-03-01T00:30:00-0130", true),
            "2024-03-01T02:00:00Z"
        );
        assert_eq!(
            timestamp("1999-12-31T23:59:59.000001Z", true),
            "1999-12-31T23:59:59.000001Z"
        );
        assert_eq!(timestamp("infinity", true), "infinity");
    }

    #[test]
    fn malformed_dates_and_times_are_refused_with_the_expected_form() {
        assert!(
            parse_date("2023-02-29")
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(parse_date("24-01-01").is_err());
        assert!(parse_date("2024-1-1").is_err());
        assert!(parse_time("24:00:01").is_err());
        assert!(parse_time("12:00:00.1234567").is_err());
        assert!(parse_time("12:60").is_err());
        let e = parse_timestamp("2024-02-29T13:45:07", true).unwrap_err();
        assert!(e.contains("offset is missing"), "{e}");
        let e = parse_timestamp("2024-02-29T13:45:07+01:00", false).unwrap_err();
        assert!(e.contains("takes no offset"), "{e}");
        assert!(parse_timestamp("2024-02-29X13:45:07", false).is_err());
    }

    #[test]
    fn floats_print_as_postgresql_prints_them() {
        for (v, s) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e20, "1e+20"),
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (123_456_789_012_345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e300, "1e+300"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(float_text(v, false), s, "{v}");
        }
        assert_eq!(float_text(f64::from(100_000f32), true), "100000");
        assert_eq!(float_text(f64::from(1_000_000f32), true), "1e+06");
        assert_eq!(float_text(f64::from(0.1f32), true), "0.1");
    }

    #[test]
    fn intervals_print_in_the_postgres_style() {
        let iv = |time: i64, days: i32, months: i32| {
            let mut raw = time.to_be_bytes().to_vec();
            raw.extend_from_slice(&days.to_be_bytes());
            raw.extend_from_slice(&months.to_be_bytes());
            interval_text(&raw).unwrap()
        };
        assert_eq!(iv(0, 0, 0), "00:00:00");
        assert_eq!(
            iv(4 * USECS_PER_HOUR + 5 * USECS_PER_MINUTE + 6_500_000, 3, 14),
            "1 year 2 mons 3 days 04:05:06.5"
        );
        assert_eq!(iv(2 * USECS_PER_HOUR, -1, 0), "-1 days +02:00:00");
        assert_eq!(iv(-1_500_000, 0, 0), "-00:00:01.5");
        assert_eq!(iv(0, -1, 1), "1 mon -1 days");
        assert_eq!(iv(100 * USECS_PER_HOUR, 0, 0), "100:00:00");
        assert_eq!(iv(0, 1, 12), "1 year 1 day");
    }

    #[test]
    fn ipv6_addresses_print_as_postgresql_prints_them() {
        let v6 = |s: &str| ipv6_text(s.parse().unwrap());
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("2001:db8::1"), "2001:db8::1");
        assert_eq!(v6("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
        assert_eq!(v6("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(v6("1:0:2:0:3:0:4:0"), "1:0:2:0:3:0:4:0");
        assert_eq!(v6("fe80::"), "fe80::");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
    }

    #[test]
    fn parameters_are_checked_against_their_type() {
        assert_eq!(
            encode(&Type::INT4, &SqlValue::Text("1".into())),
            Err(BindError::Mismatch {
                expected: "int2, int4 or int8"
            })
        );
        assert!(matches!(
            encode(&Type::INT2, &SqlValue::Int8(40_000)),
            Err(BindError::Bad(m)) if m.contains("out of range")
        ));
        assert_eq!(
            encode(&Type::INT8, &SqlValue::Int2(-2)).unwrap().unwrap(),
            (-2i64).to_be_bytes()
        );
        assert_eq!(encode(&Type::INT4, &SqlValue::Null).unwrap(), None);
        assert_eq!(
            encode(&Type::INTERVAL, &SqlValue::Text("1 day".into())),
            Err(BindError::Unsupported)
        );
        assert_eq!(encode(&Type::INTERVAL, &SqlValue::Null).unwrap(), None);
        assert_eq!(
            encode(&Type::JSONB, &SqlValue::Json("{}".into()))
                .unwrap()
                .unwrap(),
            b"\x01{}"
        );
        assert_eq!(
            encode(&Type::NUMERIC, &SqlValue::Float8(0.1)).unwrap(),
            encode(&Type::NUMERIC, &SqlValue::Numeric("0.1".into())).unwrap()
        );
        assert_eq!(
            encode(
                &Type::UUID,
                &SqlValue::Text("{67E55044-10B1-426F-9247-BB680E5FE0C8}".into())
            ),
            encode(
                &Type::UUID,
                &SqlValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into())
            )
        );
        assert!(encode(&Type::UUID, &SqlValue::Uuid("67e55044".into())).is_err());
    }

    #[test]
    fn uuids_print_lower_case_hyphenated() {
        let raw = parse_uuid("67E5504410B1426F9247BB680E5FE0C8").unwrap();
        assert_eq!(
            uuid_text(raw.as_bytes()).unwrap(),
            "67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        for ty in [
            Type::INT4,
            Type::NUMERIC,
            Type::UUID,
            Type::INTERVAL,
            Type::INET,
            Type::INT4_ARRAY,
            Type::RECORD,
            Type::TIMETZ,
            Type::VARBIT,
            Type::JSONB,
        ] {
            assert!(decode(&ty, Some(&[0, 0, 0])).is_err(), "{ty}");
        }
        assert_eq!(
            decode(&Type::NUMERIC, Some(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10])),
            Err("invalid numeric digit 10000".to_owned())
        );
    }

    #[test]
    fn arrays_print_with_postgresql_quoting() {
        let elem = |s: &str| {
            let mut v = i32::try_from(s.len()).unwrap().to_be_bytes().to_vec();
            v.extend_from_slice(s.as_bytes());
            v
        };
        let mut raw = Vec::new();
        raw.extend_from_slice(&1i32.to_be_bytes());
        raw.extend_from_slice(&1i32.to_be_bytes());
        raw.extend_from_slice(&oid::TEXT.to_be_bytes());
        raw.extend_from_slice(&5i32.to_be_bytes());
        raw.extend_from_slice(&0i32.to_be_bytes());
        raw.extend(elem("a"));
        raw.extend(elem("b c"));
        raw.extend(elem("q\"\\"));
        raw.extend_from_slice(&(-1i32).to_be_bytes());
        raw.extend(elem("null"));
        assert_eq!(
            decode(&Type::TEXT_ARRAY, Some(&raw)).unwrap(),
            SqlValue::Text(r#"[0:4]={a,"b c","q\"\\",NULL,"null"}"#.to_owned())
        );
    }
}
