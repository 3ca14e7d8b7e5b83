//! Public resources, shaped like the modelled service's REST API (camelCase JSON).
//!
//! Output-only fields (ids, statuses, live state) are in the resource types; what a client
//! may send is in the `Create…Request` types, which reject unknown fields so that a typo
//! is an error instead of a silently ignored setting.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub type Labels = BTreeMap<String, String>;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    #[default]
    Creating,
    Updating,
    Deleting,
    Active,
}

/// Fields common to every tenant resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub id: String,
    pub folder_id: String,
    pub name: String,
    pub description: String,
    pub labels: Labels,
    pub created_at: String,
    pub status: Status,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

mod catalog;
mod operation;
mod private;
mod public;
mod routing;
mod trunk;

pub use catalog::*;
pub use operation::*;
pub use private::*;
pub use public::*;
pub use routing::*;
pub use trunk::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: Option<&str>) -> Ipv4PeeringSpec {
        Ipv4PeeringSpec {
            peering_subnet: "10.0.0.0/30".parse().expect("net"),
            peer_ip: "10.0.0.2".parse().expect("ip"),
            cloud_ip: "10.0.0.1".parse().expect("ip"),
            peer_bgp_asn: 65001,
            peer_bgp_md5_key: key.map(crate::Secret::from),
        }
    }

    fn patch(json: &str) -> Result<Ipv4PeeringPatch, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_peering_patch_changes_the_fields_it_holds_and_keeps_the_key() {
        let old = spec(Some("s3cret"));
        let p = patch(r#"{"peerBgpAsn": "65010"}"#)
            .expect("patch")
            .apply(&old);
        assert_eq!(p.peer_bgp_asn, 65010);
        assert_eq!(p.peering_subnet, old.peering_subnet);
        assert_eq!(p.peer_bgp_md5_key, old.peer_bgp_md5_key);
        // The mask written back is "unchanged", never the new key.
        let p =
            patch(r#"{"peerIp": "10.0.0.1", "cloudIp": "10.0.0.2", "peerBgpMd5Key": "********"}"#)
                .expect("patch")
                .apply(&old);
        assert_eq!(
            p.peer_bgp_md5_key.as_ref().map(|k| k.expose()),
            Some("s3cret")
        );
        assert_eq!(p.peer_ip.to_string(), "10.0.0.1");
        // With no key, the mask keeps it absent.
        let p = patch(r#"{"peerBgpMd5Key": "********"}"#)
            .expect("patch")
            .apply(&spec(None));
        assert_eq!(p.peer_bgp_md5_key, None);
    }

    #[test]
    fn removing_the_key_is_explicit() {
        let old = spec(Some("s3cret"));
        for remove in [r#"{"peerBgpMd5Key": null}"#, r#"{"peerBgpMd5Key": ""}"#] {
            assert_eq!(
                patch(remove).expect(remove).apply(&old).peer_bgp_md5_key,
                None,
                "{remove}"
            );
        }
        let p = patch(r#"{"peerBgpMd5Key": "n3w"}"#)
            .expect("patch")
            .apply(&old);
        assert_eq!(p.peer_bgp_md5_key.as_ref().map(|k| k.expose()), Some("n3w"));
        assert_eq!(patch("{}").expect("empty").apply(&old), old);
    }

    #[test]
    fn required_peering_fields_cannot_be_nulled_or_misspelt() {
        for bad in [
            r#"{"peeringSubnet": null}"#,
            r#"{"peerBgpAsn": null}"#,
            r#"{"peerIP": "10.0.0.2"}"#,
            r#"{"peerBgpAsn": "x"}"#,
        ] {
            assert!(patch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zones_are_written_as_the_modelled_api_and_read_in_both_shapes() {
        let modelled = r#"{"manualInfo":{"azId":"ru-central1-a","prefixes":["10.128.0.0/24"]}}"#;
        let flat = r#"{"azId":"ru-central1-a","prefixes":["10.128.0.0/24"]}"#;
        let a: AzInfo = serde_json::from_str(modelled).expect("modelled");
        let b: AzInfo = serde_json::from_str(flat).expect("flat");
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).expect("json"), modelled);
        for bad in [
            r#"{"manualInfo":{"azId":"a"},"azId":"b"}"#,
            r#"{"prefixes":["10.0.0.0/8"]}"#,
            r#"{"manualInfo":{"azId":"a","prefixes":["10.0.0.0/33"]}}"#,
            r#"{"azId":"a","zone":"b"}"#,
        ] {
            assert!(serde_json::from_str::<AzInfo>(bad).is_err(), "{bad}");
        }
    }
}
