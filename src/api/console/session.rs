//! The console's session: the operator's API token kept in an HttpOnly, SameSite=Strict cookie
//! (Secure when the request came over TLS, as a trusted proxy says), and the CSRF token every
//! state-changing request made with it must carry, derived from the session token (nothing more
//! is stored). Before sign-in, the login form has its own CSRF token, in a cookie and the form.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// The session cookie: the operator's API token.
pub const SESSION_COOKIE: &str = "lgw_console";
/// The login form's CSRF cookie.
pub const LOGIN_COOKIE: &str = "lgw_login";
/// The header an API request authenticated by the session cookie carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name`, if the request sent it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty() && value.len() <= 256)
}

/// The CSRF token of a session: a digest of its token, so only a page the gateway served to the
/// session's holder can know it.
pub fn csrf_of(session: &str) -> String {
    let digest = Sha256::digest(format!("locker-gateway/console-csrf/v1:{session}").as_bytes());
    hex::encode(&digest[..16])
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure over TLS; `max_age` 0 clears it.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            "a=1; lgw_console=tok; b=2".parse().expect("header"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
        assert!(same(&csrf_of("tok"), &csrf_of("tok")));
        assert!(!same(&csrf_of("tok"), &csrf_of("tol")));
        assert!(set_cookie("n", "v", "/", 60, true).ends_with("HttpOnly; SameSite=Strict; Secure"));
    }
}
