//! NOTIFICATION (RFC 4271 §4.5) and its error codes, with the Cease subcodes of RFC 4486
//! and the shutdown communication of RFC 9003.

/// RFC 4271 §4.5 error codes.
pub mod error_code {
    pub const HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    /// RFC 9687: we could send the peer nothing for the send hold time.
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

pub mod header_err {
    pub const NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_LENGTH: u8 = 2;
    pub const BAD_TYPE: u8 = 3;
}

pub mod open_err {
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_ID: u8 = 3;
    pub const UNSUPPORTED_OPT_PARAM: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// RFC 9234 §4.2.
    pub const ROLE_MISMATCH: u8 = 11;
}

pub mod update_err {
    pub const MALFORMED_ATTR_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const MISSING_WELL_KNOWN: u8 = 3;
    pub const ATTR_FLAGS: u8 = 4;
    pub const ATTR_LENGTH: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTR: u8 = 9;
    pub const INVALID_NETWORK: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// RFC 4486 Cease subcodes.
pub mod cease {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMIN_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMIN_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIG_CHANGE: u8 = 6;
    pub const COLLISION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// RFC 8538: a full reset, not a graceful restart; the data is the NOTIFICATION it
    /// stands for (code, subcode, data).
    pub const HARD_RESET: u8 = 9;
    /// RFC 9384: the BFD session beside this BGP session went down.
    pub const BFD_DOWN: u8 = 10;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8) -> Self {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// This NOTIFICATION as a Cease / Hard Reset (RFC 8538 §3): the peer is to drop our
    /// routes rather than keep them as for a graceful restart.
    pub fn hard_reset(self) -> Self {
        let mut data = vec![self.code, self.subcode];
        data.extend_from_slice(&self.data);
        Notification {
            code: error_code::CEASE,
            subcode: cease::HARD_RESET,
            data,
        }
    }

    /// Whether this ends a session for good, graceful restart or not (RFC 8538): the
    /// Cease subcodes §5 sends as a Hard Reset (Maximum Number of Prefixes Reached,
    /// Administrative Shutdown, Peer De-configured, Administrative Reset), a Hard Reset,
    /// and — our choice — BFD Down (RFC 9384): the path is gone, and keeping its routes as
    /// for a restart would hold traffic on it.
    pub fn is_hard(&self) -> bool {
        self.code == error_code::CEASE
            && matches!(self.subcode, 1..=4 | cease::HARD_RESET | cease::BFD_DOWN)
    }

    /// Cease with an RFC 9003 shutdown communication (UTF-8, at most 255 bytes).
    pub fn cease_with_text(subcode: u8, text: &str) -> Self {
        let mut t = text.as_bytes().to_vec();
        t.truncate(255);
        let mut data = vec![t.len() as u8];
        data.extend_from_slice(&t);
        Notification {
            code: error_code::CEASE,
            subcode,
            data,
        }
    }

    /// "Cease / Maximum Number of Prefixes Reached", the way people read it in logs.
    pub fn describe(&self) -> String {
        use error_code::*;
        let (c, s) = match self.code {
            HEADER => (
                "Message Header Error",
                match self.subcode {
                    1 => "Connection Not Synchronized",
                    2 => "Bad Message Length",
                    3 => "Bad Message Type",
                    _ => "",
                },
            ),
            OPEN => (
                "OPEN Message Error",
                match self.subcode {
                    1 => "Unsupported Version Number",
                    2 => "Bad Peer AS",
                    3 => "Bad BGP Identifier",
                    4 => "Unsupported Optional Parameter",
                    6 => "Unacceptable Hold Time",
                    7 => "Unsupported Capability",
                    11 => "Role Mismatch",
                    _ => "",
                },
            ),
            UPDATE => (
                "UPDATE Message Error",
                match self.subcode {
                    1 => "Malformed Attribute List",
                    2 => "Unrecognized Well-known Attribute",
                    3 => "Missing Well-known Attribute",
                    4 => "Attribute Flags Error",
                    5 => "Attribute Length Error",
                    6 => "Invalid ORIGIN Attribute",
                    8 => "Invalid NEXT_HOP Attribute",
                    9 => "Optional Attribute Error",
                    10 => "Invalid Network Field",
                    11 => "Malformed AS_PATH",
                    _ => "",
                },
            ),
            HOLD_TIMER_EXPIRED => ("Hold Timer Expired", ""),
            SEND_HOLD_TIMER_EXPIRED => ("Send Hold Timer Expired", ""),
            FSM => (
                "Finite State Machine Error",
                match self.subcode {
                    1 => "Unexpected Message in OpenSent",
                    2 => "Unexpected Message in OpenConfirm",
                    3 => "Unexpected Message in Established",
                    _ => "",
                },
            ),
            CEASE => (
                "Cease",
                match self.subcode {
                    1 => "Maximum Number of Prefixes Reached",
                    2 => "Administrative Shutdown",
                    3 => "Peer De-configured",
                    4 => "Administrative Reset",
                    5 => "Connection Rejected",
                    6 => "Other Configuration Change",
                    7 => "Connection Collision Resolution",
                    8 => "Out of Resources",
                    9 => "Hard Reset",
                    10 => "BFD Down",
                    _ => "",
                },
            ),
            _ => ("Unknown Error", ""),
        };
        let mut out = if s.is_empty() {
            format!("{c} (code {}, subcode {})", self.code, self.subcode)
        } else {
            format!("{c} / {s}")
        };
        if let Some(text) = self.shutdown_text() {
            out.push_str(&format!(": \"{text}\""));
        }
        out
    }

    /// RFC 9003 communication of a Cease/Administrative Shutdown or Reset, if any.
    pub fn shutdown_text(&self) -> Option<String> {
        if self.code != error_code::CEASE
            || !(self.subcode == cease::ADMIN_SHUTDOWN || self.subcode == cease::ADMIN_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..len as usize)?;
        std::str::from_utf8(text)
            .ok()
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    }
}
