//! Helpers shared by the binary's integration tests: a minimal HTTP/1.1 client (so the tests
//! need no HTTP client crate) and logging in to get a session cookie.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response: status, headers (lower-cased names) and body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn get(addr: &str, path: &str) -> (u16, String) {
    let res = request(addr, "GET", path, &[], "");
    (res.status, res.body)
}

/// Logs in and returns the `Cookie` header value for later requests.
pub fn login(addr: &str, login: &str, password: &str) -> String {
    let body = serde_json::json!({ "login": login, "password": password }).to_string();
    let res = request(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(res.status, 200, "login as {login}: {}", res.body);
    let cookie = res.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

/// `GET path` as the logged-in user.
pub fn get_as(addr: &str, cookie: &str, path: &str) -> (u16, String) {
    let res = request(addr, "GET", path, &[("Cookie", cookie)], "");
    (res.status, res.body)
}
pub mod outage;
