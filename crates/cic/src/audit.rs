//! `cic audit list`: the audit trail, newest first (the operator: everything; a folder's
//! admin: that folder).

use anyhow::Result;
use clap::Subcommand;

use crate::client::Api;
use crate::commands::{Output, table};

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Mutations and refused authentications and authorizations, newest first.
    List {
        /// The folder (required unless you are the operator) [default: the profile's].
        #[arg(long)]
        folder: Option<String>,
        /// Only events at or after this time (RFC 3339: 2026-12-04T10:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only the events of this subject.
        #[arg(long)]
        subject: Option<String>,
        /// Events per page (1-1000).
        #[arg(long, default_value_t = 100)]
        page_size: usize,
        /// `nextPageToken` of the previous page.
        #[arg(long)]
        page_token: Option<String>,
    },
}

/// A query value, percent-encoded where a URL would misread it.
fn enc(v: &str) -> String {
    v.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' | ':' => c.to_string(),
            c => {
                let mut b = [0u8; 4];
                c.encode_utf8(&mut b)
                    .bytes()
                    .map(|x| format!("%{x:02X}"))
                    .collect()
            }
        })
        .collect()
}

impl AuditCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        let AuditCmd::List {
            folder,
            since,
            subject,
            page_size,
            page_token,
        } = self;
        let folder = folder.or_else(|| out.folder.clone());
        let mut q = vec![format!("pageSize={page_size}")];
        for (k, v) in [
            ("folderId", folder),
            ("since", since),
            ("subject", subject),
            ("pageToken", page_token),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", enc(&v)));
            }
        }
        let v = api
            .get(&format!("/audit/v1/events?{}", q.join("&")))
            .await?;
        out.print(&v, |v| {
            table(
                v,
                &[
                    "time",
                    "subject",
                    "subjectKind",
                    "sourceAddress",
                    "method",
                    "path",
                    "status",
                    "code",
                    "requestId",
                ],
            )
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            super::enc("2026-12-04T10:00:00+01:00"),
            "2026-12-04T10:00:00%2B01:00"
        );
        assert_eq!(super::enc("a b&c"), "a%20b%26c");
    }
}
