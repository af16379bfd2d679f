//! A small blocking MQTT v3.1.1 / v5 client for tests.
//!
//! Packets are encoded and decoded with `rumqttc`'s codecs (`rumqttc::mqttbytes::v4` and
//! `rumqttc::v5::mqttbytes::v5`) over a plain `std::net::TcpStream`, driven one request at a
//! time from the test thread. We do not use rumqttc's event loop: its v5 state machine turns a
//! SUBACK/PUBACK/UNSUBACK failure code into a connection error and reconnects, and its CONNECT
//! cannot send a zero-length username, both of which these tests need to observe exactly.
//! CONNECT is encoded here; the acknowledgements' reason codes are read from the raw frames
//! (one byte each), so every code the broker sends is reported as is.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// How long to wait for an acknowledgement the broker must send. Only reached on failure.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    V311,
    V5,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::V311 => "v3.1.1",
            Proto::V5 => "v5",
        })
    }
}

/// CONNACK codes used in assertions.
pub mod codes {
    /// v3.1.1 CONNACK "not authorised".
    pub const V3_NOT_AUTHORISED: u8 = 5;
    /// v3.1.1 CONNACK "bad user name or password".
    pub const V3_BAD_USERNAME_PASSWORD: u8 = 4;
    /// v5 "Not authorized" (CONNACK, SUBACK, PUBACK).
    pub const V5_NOT_AUTHORIZED: u8 = 0x87;
    /// v5 "Bad user name or password".
    pub const V5_BAD_USERNAME_PASSWORD: u8 = 0x86;
    /// v3.1.1 SUBACK failure.
    pub const V3_SUBACK_FAILURE: u8 = 0x80;
    /// v5 PUBACK "No matching subscribers".
    pub const V5_NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
}

/// What a client sends in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOpts {
    pub proto: Proto,
    pub client_id: String,
    /// `None`: no username flag. `Some("")`: a zero-length username is sent.
    pub username: Option<String>,
    /// `None`: no password flag.
    pub password: Option<Vec<u8>>,
    pub keep_alive: u16,
    pub clean: bool,
    /// Last will: topic, payload, QoS, retain.
    pub will: Option<(String, Vec<u8>, u8, bool)>,
    /// Local address to connect from (another loopback address such as 127.0.0.2, so the
    /// broker sees a different client address); `None`: the system's choice.
    pub source: Option<std::net::IpAddr>,
}

impl ConnectOpts {
    pub fn new(proto: Proto, client_id: impl Into<String>) -> Self {
        ConnectOpts {
            proto,
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive: 60,
            clean: true,
            will: None,
            source: None,
        }
    }
    pub fn v311(client_id: impl Into<String>) -> Self {
        Self::new(Proto::V311, client_id)
    }
    pub fn v5(client_id: impl Into<String>) -> Self {
        Self::new(Proto::V5, client_id)
    }
    pub fn username(mut self, u: impl Into<String>) -> Self {
        self.username = Some(u.into());
        self
    }
    pub fn password(mut self, p: impl AsRef<[u8]>) -> Self {
        self.password = Some(p.as_ref().to_vec());
        self
    }
    pub fn login(self, u: impl Into<String>, p: impl AsRef<[u8]>) -> Self {
        self.username(u).password(p)
    }
    /// Connects from this local address (for example `"127.0.0.2"`).
    pub fn from_address(mut self, ip: &str) -> Self {
        self.source = Some(ip.parse().expect("an IP address"));
        self
    }
    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some((topic.into(), payload.to_vec(), qos, retain));
        self
    }

    /// The CONNECT packet bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut vh = Vec::new();
        put_str(&mut vh, b"MQTT");
        vh.push(match self.proto {
            Proto::V311 => 4,
            Proto::V5 => 5,
        });
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if let Some((_, _, qos, retain)) = &self.will {
            flags |= 0x04 | (qos << 3);
            if *retain {
                flags |= 0x20;
            }
        }
        vh.push(flags);
        vh.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.proto == Proto::V5 {
            vh.push(0); // no properties
        }
        put_str(&mut vh, self.client_id.as_bytes());
        if let Some((topic, payload, _, _)) = &self.will {
            if self.proto == Proto::V5 {
                vh.push(0); // no will properties
            }
            put_str(&mut vh, topic.as_bytes());
            put_str(&mut vh, payload);
        }
        if let Some(u) = &self.username {
            put_str(&mut vh, u.as_bytes());
        }
        if let Some(p) = &self.password {
            put_str(&mut vh, p);
        }
        let mut out = vec![0x10];
        put_varint(&mut out, vh.len());
        out.extend_from_slice(&vh);
        out
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// Why a connection attempt did not produce a connected client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// CONNACK with this non-zero return/reason code.
    Code(u8),
    /// The broker closed the connection (or sent something else) without a CONNACK.
    NoConnack(String),
}

/// A received PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

impl Msg {
    pub fn payload_str(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.topic, self.payload_str())?;
        if self.retain {
            f.write_str(" (retained)")?;
        }
        Ok(())
    }
}

/// One raw frame: first byte and the bytes after the remaining-length field.
struct Frame {
    header: u8,
    body: Vec<u8>,
    raw: BytesMut,
}

/// What the broker sent that a test may wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    SubAck {
        pkid: u16,
        codes: Vec<u8>,
    },
    UnsubAck {
        pkid: u16,
        codes: Vec<u8>,
    },
    PubAck {
        pkid: u16,
        reason: u8,
    },
    PubRec {
        pkid: u16,
        reason: u8,
    },
    PubComp {
        pkid: u16,
    },
    PingResp,
    Disconnect {
        reason: u8,
    },
    /// A PUBLISH was stored in `received`.
    Published,
}

/// A connected MQTT client.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    proto: Proto,
    client_id: String,
    next_pkid: u16,
    received: Vec<Msg>,
    /// Why the connection is gone, once it is.
    closed: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("proto", &self.proto)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Client {
    /// Connects to 127.0.0.1:`port`. `Ok` only on CONNACK code 0.
    pub fn connect(port: u16, opts: &ConnectOpts) -> Result<Client, Refused> {
        Client::send_connect(port, opts)?.await_connack()
    }

    /// Opens the TCP connection and sends CONNECT without waiting for the CONNACK; finish with
    /// [`Client::await_connack`], or drop the client to vanish before the broker answers.
    pub fn send_connect(port: u16, opts: &ConnectOpts) -> Result<Client, Refused> {
        let stream = tcp_connect(port, opts.source)
            .map_err(|e| Refused::NoConnack(format!("TCP connect: {e}")))?;
        stream.set_nodelay(true).ok();
        let mut c = Client {
            stream,
            buf: Vec::new(),
            proto: opts.proto,
            client_id: opts.client_id.clone(),
            next_pkid: 1,
            received: Vec::new(),
            closed: None,
        };
        c.stream
            .write_all(&opts.encode())
            .map_err(|e| Refused::NoConnack(format!("write CONNECT: {e}")))?;
        Ok(c)
    }

    /// Waits (up to [`ACK_TIMEOUT`]) for the CONNACK of [`Client::send_connect`]. `Ok` only on
    /// code 0.
    pub fn await_connack(mut self) -> Result<Client, Refused> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        match self.read_frame(deadline) {
            Ok(f) if f.header >> 4 == 2 => {
                // CONNACK: [flags, code, (v5 properties)]
                let code = *f
                    .body
                    .get(1)
                    .ok_or_else(|| Refused::NoConnack("short CONNACK".into()))?;
                if code == 0 {
                    Ok(self)
                } else {
                    Err(Refused::Code(code))
                }
            }
            Ok(f) => Err(Refused::NoConnack(format!(
                "expected CONNACK, got packet type {}",
                f.header >> 4
            ))),
            Err(e) => Err(Refused::NoConnack(e)),
        }
    }

    /// Connects and returns the CONNACK code: 0 accepted, else the refusal code; `None` when the
    /// broker closed the connection without a CONNACK.
    pub fn connack_code(port: u16, opts: &ConnectOpts) -> Option<u8> {
        match Client::connect(port, opts) {
            Ok(_) => Some(0),
            Err(Refused::Code(c)) => Some(c),
            Err(Refused::NoConnack(_)) => None,
        }
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `Some(reason)` once the broker closed the connection.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    fn pkid(&mut self) -> u16 {
        let p = self.next_pkid;
        self.next_pkid = if p == u16::MAX { 1 } else { p + 1 };
        p
    }

    fn send(&mut self, bytes: &[u8]) {
        if self.closed.is_some() {
            return;
        }
        if let Err(e) = self.stream.write_all(bytes) {
            self.closed = Some(format!("write: {e}"));
        }
    }

    /// Reads one whole frame, waiting at most until `deadline`.
    fn read_frame(&mut self, deadline: Instant) -> Result<Frame, String> {
        loop {
            if let Some((header, len_len, rem)) = frame_len(&self.buf) {
                let total = 1 + len_len + rem;
                if self.buf.len() >= total {
                    let raw: Vec<u8> = self.buf.drain(..total).collect();
                    return Ok(Frame {
                        header,
                        body: raw[1 + len_len..].to_vec(),
                        raw: BytesMut::from(&raw[..]),
                    });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out waiting for a packet".into());
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("connection closed by broker".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err("timed out waiting for a packet".into())
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Reads and handles frames until `want` returns true for an event, or the deadline, or
    /// the connection closes. PUBLISH packets are stored (and acknowledged).
    fn pump_until(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(&Event) -> bool,
    ) -> Result<Event, String> {
        if let Some(c) = &self.closed {
            return Err(format!("connection already closed: {c}"));
        }
        loop {
            let frame = match self.read_frame(deadline) {
                Ok(f) => f,
                Err(e) => {
                    if !e.starts_with("timed out") {
                        self.closed = Some(e.clone());
                    }
                    return Err(e);
                }
            };
            if let Some(ev) = self.handle(frame)? {
                if let Event::Disconnect { reason } = ev {
                    self.closed = Some(format!("DISCONNECT from broker, reason 0x{reason:02x}"));
                    if !want(&ev) {
                        return Err(self.closed.clone().unwrap());
                    }
                }
                if want(&ev) {
                    return Ok(ev);
                }
            }
        }
    }

    fn handle(&mut self, f: Frame) -> Result<Option<Event>, String> {
        let ptype = f.header >> 4;
        let b = &f.body;
        let pkid = || -> Result<u16, String> {
            if b.len() < 2 {
                return Err(format!("short packet type {ptype}"));
            }
            Ok(u16::from_be_bytes([b[0], b[1]]))
        };
        // Reason codes after a v5 property block starting at `at`.
        let after_props = |at: usize| -> Result<Vec<u8>, String> {
            let (plen, n) = read_varint(&b[at..]).ok_or("bad property length")?;
            Ok(b[at + n + plen..].to_vec())
        };
        Ok(Some(match ptype {
            3 => {
                let msg = self.decode_publish(f.raw)?;
                match msg.1 {
                    1 => {
                        let mut out = vec![0x40, 2];
                        out.extend_from_slice(&msg.2.to_be_bytes());
                        self.send(&out);
                    }
                    2 => {
                        let mut out = vec![0x50, 2];
                        out.extend_from_slice(&msg.2.to_be_bytes());
                        self.send(&out);
                    }
                    _ => {}
                }
                self.received.push(msg.0);
                Event::Published
            }
            // PUBACK / PUBREC: pkid, then (v5, optional) reason
            4 | 5 => {
                let reason = if self.proto == Proto::V5 && b.len() > 2 {
                    b[2]
                } else {
                    0
                };
                if ptype == 4 {
                    Event::PubAck {
                        pkid: pkid()?,
                        reason,
                    }
                } else {
                    let p = pkid()?;
                    // PUBREL
                    let mut out = vec![0x62, 2];
                    out.extend_from_slice(&p.to_be_bytes());
                    self.send(&out);
                    Event::PubRec { pkid: p, reason }
                }
            }
            6 => {
                // PUBREL from broker (we received QoS 2): answer PUBCOMP
                let p = pkid()?;
                let mut out = vec![0x70, 2];
                out.extend_from_slice(&p.to_be_bytes());
                self.send(&out);
                return Ok(None);
            }
            7 => Event::PubComp { pkid: pkid()? },
            9 | 11 => {
                let p = pkid()?;
                let codes = match self.proto {
                    Proto::V5 => after_props(2)?,
                    Proto::V311 => b[2..].to_vec(),
                };
                if ptype == 9 {
                    Event::SubAck { pkid: p, codes }
                } else {
                    Event::UnsubAck { pkid: p, codes }
                }
            }
            13 => Event::PingResp,
            14 => Event::Disconnect {
                reason: b.first().copied().unwrap_or(0),
            },
            other => return Err(format!("unexpected packet type {other} from broker")),
        }))
    }

    /// (message, qos, pkid)
    fn decode_publish(&self, mut raw: BytesMut) -> Result<(Msg, u8, u16), String> {
        match self.proto {
            Proto::V311 => match v4::read(&mut raw, 1 << 28) {
                Ok(v4::Packet::Publish(p)) => Ok((
                    Msg {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        qos: p.qos as u8,
                        retain: p.retain,
                    },
                    p.qos as u8,
                    p.pkid,
                )),
                other => Err(format!("bad v3.1.1 PUBLISH: {other:?}")),
            },
            Proto::V5 => match v5::Packet::read(&mut raw, None) {
                Ok(v5::Packet::Publish(p)) => Ok((
                    Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        qos: p.qos as u8,
                        retain: p.retain,
                    },
                    p.qos as u8,
                    p.pkid,
                )),
                other => Err(format!("bad v5 PUBLISH: {other:?}")),
            },
        }
    }

    /// Subscribes to one filter; returns the SUBACK codes (one per filter; v3.1.1: granted QoS or
    /// 0x80; v5: reason codes, e.g. 0x87 not authorized). Panics if no SUBACK arrives.
    pub fn subscribe(&mut self, filter: &str, qos: u8) -> Vec<u8> {
        self.subscribe_many(&[(filter, qos)])
    }

    /// Subscribes to several filters in one SUBSCRIBE; returns the SUBACK codes.
    pub fn subscribe_many(&mut self, filters: &[(&str, u8)]) -> Vec<u8> {
        self.try_subscribe_many(filters)
            .unwrap_or_else(|e| panic!("{}: no SUBACK for {filters:?}: {e}", self.client_id))
    }

    /// Like [`Client::subscribe_many`] but returns the error instead of panicking.
    pub fn try_subscribe_many(&mut self, filters: &[(&str, u8)]) -> Result<Vec<u8>, String> {
        let pkid = self.pkid();
        let mut out = BytesMut::new();
        match self.proto {
            Proto::V311 => {
                let mut s = v4::Subscribe::new_many(
                    filters
                        .iter()
                        .map(|(f, q)| v4::SubscribeFilter::new(f.to_string(), qos4(*q))),
                );
                s.pkid = pkid;
                s.write(&mut out).map_err(|e| e.to_string())?;
            }
            Proto::V5 => {
                let mut s = v5::Subscribe::new_many(
                    filters.iter().map(|(f, q)| v5::Filter::new(*f, qos5(*q))),
                    None,
                );
                s.pkid = pkid;
                s.write(&mut out).map_err(|e| e.to_string())?;
            }
        }
        self.send(&out);
        match self.pump_until(
            Instant::now() + ACK_TIMEOUT,
            |e| matches!(e, Event::SubAck { pkid: p, .. } if *p == pkid),
        )? {
            Event::SubAck { codes, .. } => Ok(codes),
            _ => unreachable!(),
        }
    }

    /// Unsubscribes; returns the UNSUBACK reason codes (empty for v3.1.1).
    pub fn unsubscribe(&mut self, filter: &str) -> Vec<u8> {
        let pkid = self.pkid();
        let mut out = BytesMut::new();
        match self.proto {
            Proto::V311 => {
                let mut u = v4::Unsubscribe::new(filter);
                u.pkid = pkid;
                u.write(&mut out).expect("encode UNSUBSCRIBE");
            }
            Proto::V5 => {
                let mut u = v5::Unsubscribe::new(filter, None);
                u.pkid = pkid;
                u.write(&mut out).expect("encode UNSUBSCRIBE");
            }
        }
        self.send(&out);
        match self.pump_until(
            Instant::now() + ACK_TIMEOUT,
            |e| matches!(e, Event::UnsubAck { pkid: p, .. } if *p == pkid),
        ) {
            Ok(Event::UnsubAck { codes, .. }) => codes,
            Ok(_) => unreachable!(),
            Err(e) => panic!("{}: no UNSUBACK for {filter}: {e}", self.client_id),
        }
    }

    /// Publishes. QoS 0: returns `None` once written. QoS 1/2: waits for PUBACK/PUBREC and
    /// returns its reason code (always 0 for v3.1.1; v5: 0 success, 0x10 no matching
    /// subscribers, 0x87 not authorized, ...). Panics if the acknowledgement does not arrive.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Option<u8> {
        self.try_publish(topic, payload, qos, retain)
            .unwrap_or_else(|e| panic!("{}: publish to {topic}: {e}", self.client_id))
    }

    /// Like [`Client::publish`] but returns the error instead of panicking.
    pub fn try_publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> Result<Option<u8>, String> {
        let pkid = if qos > 0 { self.pkid() } else { 0 };
        let mut out = BytesMut::new();
        match self.proto {
            Proto::V311 => {
                let mut p = v4::Publish::new(topic, qos4(qos), payload.to_vec());
                p.pkid = pkid;
                p.retain = retain;
                p.write(&mut out).map_err(|e| e.to_string())?;
            }
            Proto::V5 => {
                let mut p = v5::Publish::new(topic, qos5(qos), payload.to_vec(), None);
                p.pkid = pkid;
                p.retain = retain;
                p.write(&mut out).map_err(|e| e.to_string())?;
            }
        }
        self.send(&out);
        if let Some(c) = &self.closed {
            return Err(format!("connection closed: {c}"));
        }
        match qos {
            0 => Ok(None),
            1 => match self.pump_until(
                Instant::now() + ACK_TIMEOUT,
                |e| matches!(e, Event::PubAck { pkid: p, .. } if *p == pkid),
            )? {
                Event::PubAck { reason, .. } => Ok(Some(reason)),
                _ => unreachable!(),
            },
            _ => {
                let ev = self.pump_until(
                    Instant::now() + ACK_TIMEOUT,
                    |e| matches!(e, Event::PubRec { pkid: p, .. } if *p == pkid),
                )?;
                let Event::PubRec { reason, .. } = ev else {
                    unreachable!()
                };
                if reason < 0x80 {
                    self.pump_until(
                        Instant::now() + ACK_TIMEOUT,
                        |e| matches!(e, Event::PubComp { pkid: p } if *p == pkid),
                    )?;
                }
                Ok(Some(reason))
            }
        }
    }

    /// Round trip (PINGREQ → PINGRESP). When it returns, the broker has processed every packet
    /// this client sent before, and every message the broker queued for this client before it
    /// handled the PINGREQ has been received and stored. No ACL check is involved.
    pub fn sync(&mut self) {
        if let Err(e) = self.try_sync() {
            panic!("{}: no PINGRESP: {e}", self.client_id);
        }
    }

    /// Like [`Client::sync`] but returns the error (e.g. the broker disconnected us).
    pub fn try_sync(&mut self) -> Result<(), String> {
        self.send(&[0xC0, 0x00]);
        self.pump_until(Instant::now() + ACK_TIMEOUT, |e| {
            matches!(e, Event::PingResp)
        })
        .map(|_| ())
    }

    /// Messages received so far (and not yet taken).
    pub fn received(&self) -> &[Msg] {
        &self.received
    }

    /// Takes the messages received so far.
    pub fn take_received(&mut self) -> Vec<Msg> {
        std::mem::take(&mut self.received)
    }

    /// Syncs, then takes every message received so far.
    pub fn drain(&mut self) -> Vec<Msg> {
        self.sync();
        self.take_received()
    }

    /// Waits (bounded) for a message on `topic`; returns it (and removes it from the store).
    pub fn wait_message(&mut self, topic: &str, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.received.iter().position(|m| m.topic == topic) {
                return Some(self.received.remove(i));
            }
            if self
                .pump_until(deadline, |e| matches!(e, Event::Published))
                .is_err()
            {
                return self
                    .received
                    .iter()
                    .position(|m| m.topic == topic)
                    .map(|i| self.received.remove(i));
            }
        }
    }

    /// Whether the broker has closed this connection, checked with a round trip.
    pub fn is_connected(&mut self) -> bool {
        self.try_sync().is_ok()
    }

    /// Closes the socket without DISCONNECT (the broker then publishes the will, if any).
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Sends DISCONNECT and closes the socket.
    pub fn disconnect(mut self) {
        self.send(&[0xE0, 0x00]);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A TCP connection to 127.0.0.1:`port`, from `source` when given.
fn tcp_connect(port: u16, source: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Some(source) = source else {
        return TcpStream::connect(target);
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::new(source, 0).into())?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// (first byte, length of the remaining-length field, remaining length) once known.
fn frame_len(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let header = *buf.first()?;
    let (rem, n) = read_varint(&buf[1..])?;
    Some((header, n, rem))
}

fn read_varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in b.iter().enumerate().take(4) {
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}
