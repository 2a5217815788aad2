//! The public scan page, `GET /v/<QR text>`: what a phone shows after scanning an
//! enterprise code or a presentation. One HTML page, Chinese first and English beside,
//! the answer readable at a glance (a green or red banner), then who, what was disclosed
//! and when it was checked. Every value is HTML-escaped.
//!
//! Checking a presentation is a verification and uses it up, like `VerifyPresentation`,
//! so it is never done by a GET: link previews, prefetching and scanner apps fetch a
//! link without anyone looking at it, and would use the presentation up before the
//! person it was shown to could check it. A GET of a presentation's page says what it
//! is and offers a button; the button posts to the same address, which checks it.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use credmesh_proto::credential::v1::{Claim, CredentialKind, VerificationOutcome};
use time::{OffsetDateTime, UtcOffset, macros::format_description};

use crate::{
    domain::code::scenario_of,
    error::EntcodeError,
    permits::PermitState,
    service::{Checked, Entcode, Outcome, Permits},
};

/// The HTTP routes: the scan page.
pub fn routes(entcode: Arc<Entcode>) -> Router {
    Router::new()
        .route("/v/{*qr}", get(scan).post(check_now))
        .with_state(entcode)
}

pub use credmesh_credential::qr::scan_path;

/// `text` (the QR text, or the scan URL carrying it) as a QR code in an SVG image, for
/// printing. The encoder picks the densest mode for each run of characters: base45 and
/// the escaped scan path fit the alphanumeric mode, a URL's host takes byte mode.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .build(),
    )
}

/// `text` as a QR code in a PNG image ([`qr_svg`] says which text): black modules, a 4-module quiet zone, `scale` pixels a
/// module, 1-bit grayscale. Written by hand (signature, IHDR, one zlib IDAT, IEND)
/// because the only encoder the `qrcode` crate offers pulls in the whole `image` crate.
pub fn qr_png(text: &str, scale: usize) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let modules = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let scale = scale.clamp(1, 16);
    let side = (modules + 2 * quiet) * scale;
    let row_bytes = side.div_ceil(8);
    let mut raw = Vec::with_capacity((row_bytes + 1) * side);
    for y in 0..side {
        raw.push(0); // filter: none
        let my = (y / scale).checked_sub(quiet).filter(|m| *m < modules);
        let mut row = vec![0xFFu8; row_bytes];
        for x in 0..side {
            let mx = (x / scale).checked_sub(quiet).filter(|m| *m < modules);
            if let (Some(mx), Some(my)) = (mx, my)
                && colors[my * modules + mx] == qrcode::Color::Dark
            {
                row[x / 8] &= !(0x80 >> (x % 8));
            }
        }
        raw.extend_from_slice(&row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&raw).ok()?;
    let idat = z.finish().ok()?;
    let side = u32::try_from(side).ok()?;
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // 1 bit, grayscale, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &idat[..]),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&u32::try_from(data.len()).ok()?.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&crc.sum().to_be_bytes());
    }
    Some(png)
}

/// The scanned text from the request path: what follows `/v/`, percent-decoded. Bytes
/// that are not UTF-8 become U+FFFD, so any scan gets a page that says what is wrong
/// rather than a bare HTTP error.
fn scanned_text(uri: &Uri) -> String {
    credmesh_credential::qr::percent_decode(uri.path().strip_prefix("/v/").unwrap_or_default())
}

/// Whether `text` claims to be a presentation, which a check uses up: the SD-JWT form,
/// or QR text whose payload says so. Nothing is verified here: this only decides whether
/// the page asks before checking, and the check that follows verifies everything.
fn single_use(text: &str) -> bool {
    use credmesh_proto::{credential::v1::Credential, prost::Message as _};
    credmesh_credential::sd_jwt::looks_like_sd_jwt(text)
        || credmesh_credential::from_qr(text)
            .ok()
            .and_then(|envelope| Credential::decode(envelope.payload.as_slice()).ok())
            .is_some_and(|c| c.kind == CredentialKind::Presentation as i32)
}

/// `GET /v/<QR text>`: the page for what was scanned; for a presentation, the page that
/// asks before using it up (see the module docs).
async fn scan(State(entcode): State<Arc<Entcode>>, uri: Uri) -> Response {
    let qr = scanned_text(&uri);
    if single_use(&qr) {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            ask_page(),
        )
            .into_response();
    }
    check(&entcode, &qr).await
}

/// `POST /v/<QR text>`: checks what was scanned now, using a presentation up.
async fn check_now(State(entcode): State<Arc<Entcode>>, uri: Uri) -> Response {
    check(&entcode, &scanned_text(&uri)).await
}

/// The page of the check of `qr`.
async fn check(entcode: &Entcode, qr: &str) -> Response {
    let scanned = entcode.scan(qr).await;
    if let Ok(checked) = &scanned
        && let Some(foreign) = entcode.scan_foreign(qr, checked).await
    {
        return match foreign {
            Ok(foreign) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                foreign_page(&foreign, checked.checked_at),
            )
                .into_response(),
            // Not signed here and the gateway gave no answer: a genuine license must not
            // read "unknown issuer" because the gateway is busy or down.
            Err(no_answer) => unavailable(&format!(
                "the verify gateway gave no answer ({})",
                no_answer.0
            )),
        };
    }
    match scanned {
        Ok(checked) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            page(&checked),
        )
            .into_response(),
        Err(e) => {
            let unavailable = matches!(
                e,
                EntcodeError::NonceStoreUnavailable | EntcodeError::LicenseUnavailable(_)
            );
            if unavailable {
                return self::unavailable(&e.to_string());
            }
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                unavailable_page(&e.to_string()),
            )
                .into_response()
        }
    }
}

/// 503 "cannot check now" for `why`, to be retried shortly and never kept by a cache.
fn unavailable(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::RETRY_AFTER, "5"),
        ],
        unavailable_page(why),
    )
        .into_response()
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Chinese and English labels of the license claim names.
fn label(name: &str) -> (&'static str, &'static str) {
    match name {
        "name" => ("名称", "Name"),
        "uscc" => ("统一社会信用代码", "Unified social credit code"),
        "entity_type" => ("类型", "Entity type"),
        "legal_representative" => ("法定代表人", "Legal representative"),
        "registered_capital" => ("注册资本", "Registered capital"),
        "establishment_date" => ("成立日期", "Established"),
        "business_term" => ("营业期限", "Business term"),
        "domicile" => ("住所", "Domicile"),
        "business_scope" => ("经营范围", "Business scope"),
        "registration_authority" => ("登记机关", "Registration authority"),
        "registration_authority_uscc" => ("登记机关代码", "Authority code"),
        "issue_date" => ("发照日期", "Issue date"),
        "permits" => ("许可证", "Permits"),
        "credit_grade" => ("信用等级", "Credit grade"),
        _ => ("", ""),
    }
}

/// A claim's value as a person reads it on the page: a business term as "from 至 to",
/// an open one as 长期 (long-term); a registered capital with thousands separators, in
/// 元 when it is in yuan. The API's answers keep the claims' own forms (`2021-05-18/..`,
/// `500000.00 CNY`); anything else, or anything not in those forms, is shown as it is.
fn shown(name: &str, value: &str) -> String {
    match name {
        "business_term" => match value.split_once('/') {
            Some((start, "..")) => format!("{start} 至 长期 · long-term"),
            Some((start, end)) => format!("{start} 至 {end}"),
            None => value.to_owned(),
        },
        "registered_capital" => match value
            .split_once(' ')
            .and_then(|(amount, currency)| Some((grouped(amount)?, currency)))
        {
            Some((amount, "CNY")) => format!("{amount} 元 (CNY)"),
            Some((amount, currency)) => format!("{amount} {currency}"),
            None => value.to_owned(),
        },
        _ => value.to_owned(),
    }
}

/// A decimal amount with a comma between each three digits of its whole part
/// (`1234567.50` → `1,234,567.50`); `None` unless it is digits with at most one point.
fn grouped(amount: &str) -> Option<String> {
    let (whole, fraction) = match amount.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (amount, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let mut out = String::with_capacity(amount.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    Some(out)
}

fn verdict(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Valid => ("有效", "Valid"),
        Outcome::Expired => ("已过期", "Expired"),
        Outcome::NotYetValid => ("尚未生效", "Not yet valid"),
        Outcome::AlreadyUsed => ("已使用", "Already used"),
        Outcome::LicenseNotActive => ("营业执照已注销或吊销", "License not in force"),
        Outcome::BadSignature => ("签名无效", "Bad signature"),
        Outcome::UnknownIssuer => ("签发者未知", "Unknown issuer"),
        Outcome::Malformed => ("无法识别", "Not readable"),
    }
}

/// What the verdict means for the person holding the phone, and what to do, in Chinese
/// (the English sentence under it is the check's own detail).
fn advice(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Valid => "该码由登记机关签发、未被篡改，经营主体的营业执照处于有效状态。",
        Outcome::Expired => "该码已过有效期，请经营主体刷新后重新出示。",
        Outcome::NotYetValid => "该码尚未到生效时间，请核对手机时间，或稍后再扫。",
        Outcome::AlreadyUsed => "该场景码已被查验过，每个码只能使用一次，请经营主体重新生成。",
        Outcome::LicenseNotActive => {
            "该经营主体的营业执照已注销或被吊销，身份码已停用，请勿据此办理业务。"
        }
        Outcome::BadSignature => "签名校验未通过，该码可能被篡改或伪造，请勿据此办理业务。",
        Outcome::UnknownIssuer => "签发机关不在本地区信任的名单中，无法确认该码的来源。",
        Outcome::Malformed => "无法识别该二维码，请确认扫描的是经营主体身份码或电子证照。",
    }
}

/// The verdict and its meaning, in Chinese and English, for a credential the verify
/// gateway checked.
fn foreign_verdict(outcome: VerificationOutcome) -> (&'static str, &'static str, &'static str) {
    use VerificationOutcome as O;
    match outcome {
        O::Valid => (
            "有效",
            "Valid",
            "该凭证由可信的签发机关签发、未被篡改，目前处于有效状态。",
        ),
        O::Revoked => (
            "已撤销",
            "Revoked",
            "该凭证已被撤销或已被新版本取代，不再有效。",
        ),
        O::Suspended => ("已暂停", "Suspended", "该凭证已被暂停使用，暂不有效。"),
        O::Expired => ("已过期", "Expired", "该凭证已过有效期。"),
        O::NotYetValid => (
            "尚未生效",
            "Not yet valid",
            "该凭证尚未到生效时间，请核对手机时间，或稍后再扫。",
        ),
        O::UnknownIssuer => (
            "签发者未知",
            "Unknown issuer",
            "签发机关不在信任的名单中，无法确认该凭证的来源。",
        ),
        O::BadSignature => (
            "签名无效",
            "Bad signature",
            "签名校验未通过，该凭证可能被篡改或伪造。",
        ),
        O::StatusUnknown => (
            "状态未知",
            "Status unknown",
            "暂时无法确认该凭证的最新状态，请稍后再试。",
        ),
        O::Malformed | O::Unspecified => ("无法识别", "Not readable", "无法识别该二维码内容。"),
    }
}

fn when(unix: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| UtcOffset::from_hms(8, 0, 0).ok().map(|o| t.to_offset(o)))
        .and_then(|t| t.format(format).ok())
        .map(|t| format!("{t} (UTC+8)"))
        .unwrap_or_else(|| unix.to_string())
}

fn rows(claims: &[Claim]) -> String {
    let mut out = String::new();
    for c in claims {
        let (zh, en) = label(&c.name);
        let (zh, en) = if zh.is_empty() {
            (c.name.as_str(), "")
        } else {
            (zh, en)
        };
        out.push_str(&format!(
            "<tr data-field=\"{}\"><th>{}<br><small>{}</small></th><td>{}</td></tr>\n",
            escape(&c.name),
            escape(zh),
            escape(en),
            escape(&shown(&c.name, &c.value))
        ));
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:0;background:#f4f5f7;color:#1d1d1f}\
main{max-width:34rem;margin:0 auto;padding:1rem}\
.verdict{border-radius:12px;padding:1.2rem;color:#fff;text-align:center}\
.ok{background:#1a7f37}.bad{background:#c62828}.ask{background:#455a64}\
button{font:inherit;font-size:1.1rem;font-weight:600;width:100%;margin-top:.8rem;padding:.8rem;border:0;border-radius:10px;background:#1a56db;color:#fff}\
.verdict h1{margin:0;font-size:2rem}.verdict p{margin:.4rem 0 0}\
section{background:#fff;border-radius:12px;padding:1rem;margin-top:1rem}\
h2{font-size:1.05rem;margin:0 0 .6rem}\
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:.4rem;border-top:1px solid #eee;vertical-align:top}\
th{width:40%;font-weight:600}.state{font-weight:600;color:#fff;padding:.1rem .4rem;border-radius:4px;display:inline-block}.note{color:#666;margin:0}.disputed{color:#8a5300;font-weight:600}small{color:#666;font-weight:400}footer{color:#666;font-size:.85rem;margin-top:1rem;text-align:center}\
#why p{margin:.3rem 0}#why p[lang=en]{color:#555;font-size:.9rem}";

/// The permits section of a valid enterprise code: each permit's type, serial, state,
/// issuing department and last day; or a sentence that they could not be loaded.
fn permits_section(permits: &Permits) -> String {
    let body = match permits {
        Permits::NotAsked => return String::new(),
        Permits::Unavailable(_) => {
            "<p class=\"note\" data-permits=\"unavailable\">许可证信息暂时无法加载 · \
The permits could not be loaded right now; the license above is checked.</p>"
                .to_string()
        }
        Permits::Loaded(list) if list.is_empty() => {
            "<p class=\"note\" data-permits=\"none\">无关联许可证 · No permits on record</p>"
                .to_string()
        }
        Permits::Loaded(list) => {
            let mut out = String::from("<table>");
            for p in list {
                let (zh, en) = p.state.words();
                let cls = if p.state == PermitState::Valid {
                    "ok"
                } else {
                    "bad"
                };
                let department = if p.department_name.is_empty() {
                    p.department.as_str()
                } else {
                    p.department_name.as_str()
                };
                // While a data dispute is open the permit says so and names the
                // fields, as every verification of it does.
                let disputed = if p.disputed_fields.is_empty() {
                    String::new()
                } else {
                    let fields = escape(&p.disputed_fields.join(", "));
                    format!(
                        "<br><span class=\"disputed\" data-disputed=\"{fields}\">数据异议处理中 · \
Data disputed: {fields}</span>"
                    )
                };
                out.push_str(&format!(
                    "<tr data-serial=\"{serial}\" data-state=\"{en}\"><th>{name}<br><small>{serial}</small></th>\
<td><span class=\"state {cls}\">{zh} · {en}</span>{disputed}<br>\
<small>发证机关 · Issued by</small> {department}<br>\
<small>有效期至 · Valid until</small> {until}</td></tr>\n",
                    serial = escape(&p.serial),
                    name = escape(&p.type_name),
                    zh = escape(zh),
                    en = escape(en),
                    department = escape(department),
                    until = escape(&p.valid_until),
                ));
            }
            out.push_str("</table>");
            out
        }
    };
    format!("<section id=\"permits\"><h2>许可证 · Permits</h2>{body}</section>")
}

/// The page for an answer.
pub fn page(checked: &Checked) -> String {
    let ok = checked.outcome == Outcome::Valid;
    let (zh, en) = verdict(checked.outcome);
    let credential = checked.credential.as_ref();
    let kind = match credential.map(|c| CredentialKind::try_from(c.kind)) {
        Some(Ok(CredentialKind::EnterpriseCode)) => "经营主体身份码 · Enterprise code".to_string(),
        Some(Ok(CredentialKind::Presentation)) => format!(
            "场景亮码 · Scenario presentation: {}",
            escape(credential.and_then(|c| scenario_of(&c.id)).unwrap_or("?"))
        ),
        _ => "凭证 · Credential".to_string(),
    };
    let name = checked
        .license
        .as_ref()
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let uscc = credential.map(|c| c.subject.clone()).unwrap_or_default();
    let who = if uscc.is_empty() {
        String::new()
    } else {
        format!(
            "<section id=\"who\"><h2>主体 · Who</h2><p><strong>{}</strong><br>{}</p></section>",
            escape(&name),
            escape(&uscc)
        )
    };
    // What is shown: a valid presentation's disclosed fields, or for a valid code the
    // enterprise's current license (the public face of a paper license).
    let shown: Vec<Claim> = match credential.map(|c| CredentialKind::try_from(c.kind)) {
        Some(Ok(CredentialKind::Presentation)) => checked.disclosed().to_vec(),
        Some(Ok(CredentialKind::EnterpriseCode)) if ok => checked
            .license
            .as_ref()
            .map(|l| l.claims.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let disclosed = if shown.is_empty() {
        String::new()
    } else {
        format!(
            "<section id=\"disclosed\"><h2>披露信息 · Disclosed</h2><table>{}</table></section>",
            rows(&shown)
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{zh} · {en} — credmesh</title><style>{STYLE}</style></head>\
<body><main>\
<div id=\"verdict\" class=\"verdict {cls}\" data-outcome=\"{reason}\"><h1>{mark} {zh}</h1><p>{en}</p></div>\
<section id=\"why\"><h2>{kind}</h2><p class=\"advice\">{advice}</p><p lang=\"en\">{detail}</p></section>\
{who}{disclosed}{permits}\
<footer id=\"checked\">查验时间 · Checked at {at}</footer>\
</main></body></html>\n",
        cls = if ok { "ok" } else { "bad" },
        reason = checked.outcome.reason(),
        mark = if ok { "✓" } else { "✗" },
        zh = escape(zh),
        en = escape(en),
        advice = escape(advice(checked.outcome)),
        detail = escape(&checked.detail),
        at = escape(&when(checked.checked_at)),
        permits = if ok {
            permits_section(&checked.permits)
        } else {
            String::new()
        },
    )
}

/// The scan page of a credential another issuer signed, as the verify gateway answered.
pub fn foreign_page(f: &crate::foreign::ForeignCheck, checked_at: i64) -> String {
    let (zh, en, advice) = if f.superseded && f.outcome == VerificationOutcome::Revoked {
        (
            "已被新版本取代",
            "Superseded",
            "该凭证已被新版本取代，不再有效；请向持证主体索取最新版本。",
        )
    } else {
        foreign_verdict(f.outcome)
    };
    // A disputed credential stays valid, and says which of its data is disputed; a
    // status older than the freshness target says how old (the issuer's region could
    // not be reached lately).
    let mut notes = String::new();
    if !f.disputed_fields.is_empty() {
        let fields = escape(&f.disputed_fields.join(", "));
        notes.push_str(&format!(
            "<p class=\"disputed\" data-disputed=\"{fields}\">数据异议处理中：以下内容正在核实 · \
Data disputed, being checked: {fields}</p>"
        ));
    }
    if let Some(age) = f.stale_seconds {
        notes.push_str(&format!(
            "<p class=\"disputed\" data-stale=\"{age}\">状态数据 {age} 秒前更新，签发地区暂时无法连接 · \
Status data {age} s old: the issuer's region could not be reached lately</p>"
        ));
    }
    let kind = match f.kind {
        CredentialKind::InspectionCode => "涉企行政检查码 · Inspection code",
        CredentialKind::BusinessLicense => "营业执照 · Business license",
        CredentialKind::Certificate => "许可证 · Certificate",
        _ => "凭证 · Credential",
    };
    let disclosed = if f.claims.is_empty() {
        String::new()
    } else {
        format!(
            "<section id=\"disclosed\"><h2>凭证内容 · Contents</h2><table>{}</table></section>",
            rows(&f.claims)
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{zh} · {en} — credmesh</title><style>{STYLE}</style></head>\
<body><main>\
<div id=\"verdict\" class=\"verdict {cls}\" data-outcome=\"{reason}\"><h1>{mark} {zh}</h1><p>{en}</p></div>\
<section id=\"why\"><h2>{kind}</h2><p class=\"advice\">{advice}</p>{notes}<p lang=\"en\">{detail}</p></section>\
<section id=\"who\"><h2>签发 · Issuer</h2><p>{issuer}<br>{subject}</p></section>{disclosed}\
<footer id=\"checked\">查验时间 · Checked at {at}</footer>\
</main></body></html>\n",
        cls = if f.is_valid() { "ok" } else { "bad" },
        reason = escape(&f.reason),
        mark = if f.is_valid() { "✓" } else { "✗" },
        advice = escape(advice),
        detail = escape(&f.detail),
        issuer = escape(&f.issuer),
        subject = escape(&f.subject),
        at = escape(&when(checked_at)),
    )
}

/// The page of a presentation not checked yet: what it is, and the button that checks it.
pub fn ask_page() -> String {
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<title>待核验 · Not checked yet — credmesh</title><style>{STYLE}</style></head>\
<body><main>\
<div id=\"verdict\" class=\"verdict ask\" data-outcome=\"UNCHECKED\"><h1>待核验</h1><p>Not checked yet</p></div>\
<section id=\"why\"><h2>场景亮码 · Scenario presentation</h2>\
<p class=\"advice\">这是经营主体出示的一次性亮码，核验一次后即失效。请在为其办理业务时点击核验。</p>\
<p lang=\"en\">A single-use code an enterprise shows for one check: checking it uses it up. \
Check it when you act on it.</p>\
<form method=\"post\"><button id=\"check\" type=\"submit\">核验 · Check now</button></form></section>\
</main></body></html>\n"
    )
}

fn unavailable_page(why: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>暂时无法查验 · Cannot check now</title>\
<style>{STYLE}</style></head><body><main><div id=\"verdict\" class=\"verdict bad\" data-outcome=\"UNAVAILABLE\">\
<h1>暂时无法查验</h1><p>Cannot check now — please try again shortly</p></div>\
<section><p>{}</p></section></main></body></html>\n",
        escape(why)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_and_capital_read_as_people_write_them() {
        assert_eq!(
            shown("business_term", "2021-05-18/.."),
            "2021-05-18 至 长期 · long-term"
        );
        assert_eq!(
            shown("business_term", "2021-05-18/2041-05-17"),
            "2021-05-18 至 2041-05-17"
        );
        assert_eq!(
            shown("registered_capital", "500000.00 CNY"),
            "500,000.00 元 (CNY)"
        );
        assert_eq!(shown("registered_capital", "1234567 USD"), "1,234,567 USD");
        assert_eq!(shown("registered_capital", "100.5 CNY"), "100.5 元 (CNY)");
        // Anything else as it is.
        assert_eq!(shown("registered_capital", "1e9 CNY"), "1e9 CNY");
        assert_eq!(shown("registered_capital", "-5 CNY"), "-5 CNY");
        assert_eq!(shown("business_term", "2021-05-18"), "2021-05-18");
        assert_eq!(shown("domicile", "a/.."), "a/..");
    }

    #[test]
    fn values_are_escaped_and_paths_encoded() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
        assert_eq!(scan_path("CM1:A B%/C"), "/v/CM1:A%20B%25%2FC");
    }

    #[test]
    fn scanned_text_round_trips_the_scan_path_and_survives_bad_bytes() {
        let text = "CM1:A B%/C$*+-.:9";
        let uri: Uri = scan_path(text).parse().unwrap();
        assert_eq!(scanned_text(&uri), text);
        let uri: Uri = "/v/%FF%FEx%4".parse().unwrap();
        assert_eq!(scanned_text(&uri), "\u{fffd}\u{fffd}x%4");
    }

    #[test]
    fn only_a_presentation_is_asked_about_before_its_check() {
        use credmesh_credential::{keys::IssuerKey, sign_credential, to_qr};
        use credmesh_proto::credential::v1::Credential;
        let key = IssuerKey::generate("SH-entcode-test").unwrap();
        let signed = |kind: CredentialKind| {
            to_qr(&sign_credential(
                &Credential {
                    kind: kind as i32,
                    issuer: "SH/entcode".into(),
                    subject: "91310106MA1FL3Q19D".into(),
                    ..Default::default()
                },
                &key,
            ))
        };
        let presentation = signed(CredentialKind::Presentation);
        assert!(single_use(&presentation));
        assert!(single_use(&credmesh_credential::scan_url(
            "https://verify.sh.example.gov.cn",
            &presentation
        )));
        assert!(single_use(
            "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJ4In0.c2ln~WyJhIiwiYiIsImMiXQ~"
        ));
        assert!(!single_use(&signed(CredentialKind::EnterpriseCode)));
        assert!(!single_use(&signed(CredentialKind::BusinessLicense)));
        assert!(!single_use("CM1:NOT-A-CODE"));
        assert!(!single_use("<script>"));
    }

    #[test]
    fn the_png_is_a_well_formed_square_image() {
        let png = qr_png("CM1:HELLO WORLD", 4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!(w, h);
        assert_eq!(w % 4, 0);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    }

    #[test]
    fn a_page_shows_the_verdict_and_never_raw_markup() {
        let checked = Checked {
            outcome: Outcome::AlreadyUsed,
            detail: "<script>alert(1)</script>".into(),
            credential: None,
            license: None,
            checked_at: 1_790_000_000,
            permits: Permits::NotAsked,
        };
        let html = page(&checked);
        assert!(html.contains("已使用"));
        assert!(html.contains("Already used"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("(UTC+8)"));
        // What it means and what to do, in Chinese, above the English detail.
        assert!(html.contains("每个码只能使用一次"), "{html}");
    }

    #[test]
    fn a_foreign_credential_s_page_names_its_outcome() {
        let check = |outcome| crate::foreign::ForeignCheck {
            outcome,
            reason: "X".into(),
            detail: "the detail".into(),
            kind: CredentialKind::Certificate,
            issuer: "SH/certificate".into(),
            subject: "91310106MA1FL3Q19D".into(),
            claims: Vec::new(),
            superseded: false,
            disputed_fields: Vec::new(),
            stale_seconds: None,
        };
        let html = foreign_page(&check(VerificationOutcome::Revoked), 1_790_000_000);
        assert!(
            html.contains("已撤销") && html.contains("Revoked"),
            "{html}"
        );
        assert!(html.contains("不再有效") && html.contains("the detail"));
        assert!(html.contains("verdict bad"));
        let html = foreign_page(&check(VerificationOutcome::StatusUnknown), 1_790_000_000);
        assert!(html.contains("状态未知"), "{html}");
        let html = foreign_page(&check(VerificationOutcome::Valid), 1_790_000_000);
        assert!(
            html.contains("verdict ok") && html.contains("有效"),
            "{html}"
        );
        assert!(!html.contains("data-disputed") && !html.contains("data-stale"));

        // Replaced by a newer version is not the same news as revoked.
        let superseded = crate::foreign::ForeignCheck {
            superseded: true,
            ..check(VerificationOutcome::Revoked)
        };
        let html = foreign_page(&superseded, 1_790_000_000);
        assert!(
            html.contains("已被新版本取代") && html.contains("Superseded"),
            "{html}"
        );
        assert!(!html.contains("已撤销"), "{html}");

        // Valid, with the disputed fields named, and how old stale status data is.
        let disputed = crate::foreign::ForeignCheck {
            disputed_fields: vec!["address".into()],
            stale_seconds: Some(420),
            ..check(VerificationOutcome::Valid)
        };
        let html = foreign_page(&disputed, 1_790_000_000);
        assert!(html.contains("verdict ok"), "{html}");
        assert!(
            html.contains("data-disputed=\"address\"") && html.contains("数据异议处理中"),
            "{html}"
        );
        assert!(
            html.contains("data-stale=\"420\"") && html.contains("420 s old"),
            "{html}"
        );
    }
}
