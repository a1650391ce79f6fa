//! Manager tests against the recording fakes: no root, no kernel, a temporary state directory.

use std::path::PathBuf;

use nix::errno::Errno;

use super::*;
use crate::firewall::nft::RecordingNft;
use crate::ipam::SubnetRequest;
use crate::link::{LinkOp, NsRef, RecordingNetlink};

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = std::env::temp_dir().join(format!("berth-net-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for key in ["net/ipv4", "net/ipv6/conf/all"] {
            std::fs::create_dir_all(dir.join("sys").join(key)).unwrap();
        }
        std::fs::write(dir.join("sys/net/ipv4/ip_forward"), "0").unwrap();
        std::fs::write(dir.join("sys/net/ipv6/conf/all/forwarding"), "0").unwrap();
        Env { dir }
    }

    async fn open(
        &self,
        nl: RecordingNetlink,
        nft: RecordingNft,
    ) -> NetworkManager<RecordingNetlink, RecordingNft> {
        NetworkManager::open(&self.dir, nl, nft, Sysctl::new(self.dir.join("sys")))
            .await
            .unwrap()
    }

    fn sysctl(&self, key: &str) -> String {
        std::fs::read_to_string(self.dir.join("sys").join(key)).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn attach_req(name: &str, ports: &[&str]) -> AttachRequest {
    AttachRequest {
        container: format!("{name}-id"),
        container_name: name.to_string(),
        ns: Some(PathBuf::from(format!("/run/netns/{name}"))),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        ..AttachRequest::default()
    }
}

fn user_net(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.to_string(),
        ..CreateRequest::default()
    }
}

#[test]
fn open_creates_the_predefined_networks_once() {
    rt().block_on(async {
        let env = Env::new("open");
        let mgr = env
            .open(RecordingNetlink::new(), RecordingNft::default())
            .await;
        let names: Vec<_> = mgr.list().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["bridge", "host", "none"]);
        let bridge = mgr.inspect("bridge").unwrap();
        assert_eq!(bridge.ipam.config[0].subnet, "172.17.0.0/16");
        assert_eq!(bridge.ipam.config[0].gateway, "172.17.0.1");
        assert!(
            mgr.netlink().ops.iter().any(
                |op| matches!(op, LinkOp::CreateBridge { name, .. } if name == DEFAULT_BRIDGE)
            )
        );
        assert_eq!(env.sysctl("net/ipv4/ip_forward"), "1");
        let id = bridge.id.clone();
        drop(mgr);
        // A restart keeps the IDs; the bridge is there already, so nothing is created.
        let nl = RecordingNetlink::new().with_link(NsRef::Host, DEFAULT_BRIDGE);
        let mgr = env.open(nl, RecordingNft::default()).await;
        assert_eq!(mgr.inspect("bridge").unwrap().id, id);
        assert!(mgr.netlink().ops.is_empty());
        // The firewall is rebuilt whole on start (reconciliation).
        assert!(mgr.fw.nft().batches[0].rules_added() > 0);
    });
}

#[test]
fn create_takes_the_next_pool_and_validates_everything_first() {
    rt().block_on(async {
        let env = Env::new("create");
        let mut mgr = env
            .open(RecordingNetlink::new(), RecordingNft::default())
            .await;
        let net = mgr.create(user_net("front")).await.unwrap();
        let DriverConfig::Bridge { bridge, .. } = &net.driver else {
            panic!()
        };
        assert_eq!(bridge, &format!("br-{}", &net.id[..12]));
        assert_eq!(
            mgr.inspect("front").unwrap().ipam.config[0].subnet,
            "172.18.0.0/16"
        );
        // By ID prefix.
        assert_eq!(mgr.inspect(&net.id[..10]).unwrap().name, "front");

        let before = std::fs::read(env.dir.join("networks.json")).unwrap();
        let ops = mgr.netlink().ops.len();
        let errors = [
            mgr.create(user_net("front")).await.unwrap_err().to_string(),
            mgr.create(CreateRequest {
                ipv4: SubnetRequest {
                    subnet: Some("172.18.5.0/24".parse().unwrap()),
                    ..SubnetRequest::default()
                },
                ..user_net("overlap")
            })
            .await
            .unwrap_err()
            .to_string(),
            mgr.create(CreateRequest {
                driver: Some("overlay".into()),
                ..user_net("x")
            })
            .await
            .unwrap_err()
            .to_string(),
            mgr.create(CreateRequest {
                driver: Some("macvlan".into()),
                options: [("parent".to_string(), "nope0".to_string())].into(),
                ..user_net("mv")
            })
            .await
            .unwrap_err()
            .to_string(),
        ];
        assert!(errors[0].contains("already exists"), "{}", errors[0]);
        assert!(
            errors[1].contains("172.18.5.0/24 overlaps 172.18.0.0/16"),
            "{}",
            errors[1]
        );
        assert!(errors[2].contains("\"overlay\""), "{}", errors[2]);
        assert!(
            errors[3].contains("parent interface nope0"),
            "{}",
            errors[3]
        );
        // Nothing was applied or recorded by the refused requests.
        assert_eq!(mgr.netlink().ops.len(), ops);
        assert_eq!(
            std::fs::read(env.dir.join("networks.json")).unwrap(),
            before
        );
    });
}

#[test]
fn attach_detach_and_ports() {
    rt().block_on(async {
        let env = Env::new("attach");
        let mut mgr = env
            .open(RecordingNetlink::new(), RecordingNft::default())
            .await;
        let links_before = mgr.netlink().links();
        mgr.create(CreateRequest {
            ipv6: Some(SubnetRequest {
                subnet: Some("fd00:18::/64".parse().unwrap()),
                ..SubnetRequest::default()
            }),
            ..user_net("back")
        })
        .await
        .unwrap();
        assert_eq!(env.sysctl("net/ipv6/conf/all/forwarding"), "1");

        let web = mgr
            .attach("bridge", attach_req("web", &["8080:80", "5353:53/udp"]))
            .await
            .unwrap();
        assert_eq!(web.ipv4.unwrap().to_string(), "172.17.0.2/16");
        assert_eq!(web.ifname.as_deref(), Some("eth0"));
        assert!(web.gateway);
        assert!(web.host_ifname.as_ref().unwrap().starts_with("veth"));
        // 0.0.0.0 and :: for each spec; the :: ones point at the IPv4 address (proxy only).
        assert_eq!(web.published.len(), 4);
        let fw = mgr.firewall_state();
        assert_eq!(fw.published.len(), 4);
        assert_eq!(fw.ports.len(), 1);

        // A second network on the running container: eth1, no second default route.
        let web2 = mgr.attach("back", attach_req("web", &[])).await.unwrap();
        assert_eq!(web2.ifname.as_deref(), Some("eth1"));
        assert!(!web2.gateway);
        assert_eq!(web2.ipv6.unwrap().to_string(), "fd00:18::2/64");

        // The same host port for another container: Docker's message; nothing leaks.
        let before = mgr.state().clone();
        let ops = mgr.netlink().ops.len();
        let e = mgr
            .attach("bridge", attach_req("db", &["8080:5432"]))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
        assert_eq!(mgr.state(), &before);
        assert_eq!(mgr.netlink().ops.len(), ops);
        // A different host address on the same port is fine.
        let db = mgr
            .attach("bridge", attach_req("db", &["127.0.0.1:9090:5432"]))
            .await
            .unwrap();
        assert_eq!(db.ipv4.unwrap().addr().to_string(), "172.17.0.3");
        let e = mgr
            .attach("bridge", attach_req("db", &[]))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("already exists in network bridge"),
            "{e}"
        );
        let e = mgr.attach("host", attach_req("db", &[])).await.unwrap_err();
        assert!(e.to_string().contains("host or none"), "{e}");

        // Inspect in Docker's shape.
        let json = serde_json::to_value(mgr.inspect("bridge").unwrap()).unwrap();
        let c = &json["Containers"]["web-id"];
        assert_eq!(c["Name"], "web");
        assert_eq!(c["IPv4Address"], "172.17.0.2/16");
        assert_eq!(c["MacAddress"], "02:42:ac:11:00:02");
        assert_eq!(json["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
        assert_eq!(json["Options"]["com.docker.network.bridge.name"], "berth0");
        // A user network shows the options it was given: none here.
        let back = serde_json::to_value(mgr.inspect("back").unwrap()).unwrap();
        assert_eq!(back["Options"], serde_json::json!({}), "{back}");

        // Prune removes the user-defined networks nobody is attached to, only those.
        mgr.create(user_net("idle")).await.unwrap();
        let pruned: Vec<String> = mgr.prune().await.into_iter().map(|n| n.name).collect();
        assert_eq!(pruned, ["idle"]);
        assert!(mgr.find("back").is_ok() && mgr.find("bridge").is_ok());
        assert!(mgr.find("idle").is_err());

        // Removal is refused while attached.
        let e = mgr.remove("back").await.unwrap_err();
        assert!(e.to_string().contains("has active endpoints (web)"), "{e}");
        assert!(
            mgr.remove("bridge")
                .await
                .unwrap_err()
                .to_string()
                .contains("pre-defined")
        );

        for (net, ctr) in [("bridge", "web"), ("back", "web"), ("bridge", "db")] {
            mgr.detach(net, ctr).await.unwrap();
        }
        let e = mgr.detach("bridge", "web").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "container web is not connected to network bridge"
        );
        mgr.remove("back").await.unwrap();
        assert!(mgr.firewall_state().published.is_empty());
        assert_eq!(mgr.netlink().links(), links_before);
        // The addresses went back: a new container gets .2 again once the pool wraps, and the
        // allocation set is empty now.
        assert!(mgr.state().endpoints.is_empty());
    });
}

#[test]
fn attach_record_takes_the_address_and_leaves_the_interface_to_the_caller() {
    rt().block_on(async {
        let env = Env::new("attachrecord");
        let nl = RecordingNetlink::new().with_link(NsRef::Host, DEFAULT_BRIDGE);
        let mut mgr = env.open(nl, RecordingNft::default()).await;
        let links = mgr.netlink().links();
        let (web, ops) = mgr
            .attach_record("bridge", attach_req("web", &["8080:80"]))
            .unwrap();
        assert_eq!(
            mgr.netlink().links(),
            links,
            "nothing applied by the manager"
        );
        assert!(
            ops.iter().any(|op| matches!(op, LinkOp::CreateVeth { .. })),
            "{ops:?}"
        );
        assert!(mgr.state().endpoints.contains_key(&web.id));
        // Another container, while the first's interface is still being made: its own address.
        let (db, _) = mgr.attach_record("bridge", attach_req("db", &[])).unwrap();
        assert_ne!(web.ipv4, db.ipv4);
        // The caller could not make the interface: the endpoint and its address go back.
        mgr.detach_record("bridge", "web-id").unwrap();
        assert!(!mgr.state().endpoints.contains_key(&web.id));
        let (again, _) = mgr
            .attach_record("bridge", attach_req("web", &["8080:80"]))
            .unwrap();
        assert!(
            again.published.iter().any(|m| m.host.port() == 8080),
            "the port is free again"
        );
    });
}

#[test]
fn a_failed_link_plan_changes_nothing() {
    rt().block_on(async {
        let env = Env::new("linkfail");
        drop(
            env.open(RecordingNetlink::new(), RecordingNft::default())
                .await,
        );
        // Fail the third op of the connect plan (after the veth exists).
        let nl = RecordingNetlink::new()
            .with_link(NsRef::Host, DEFAULT_BRIDGE)
            .fail_at(2, Errno::EPERM);
        let mut mgr = env.open(nl, RecordingNft::default()).await;
        let links = mgr.netlink().links();
        let state = mgr.state().clone();
        let batches = mgr.fw.nft().batches.len();
        let e = mgr
            .attach("bridge", attach_req("web", &["8080:80"]))
            .await
            .unwrap_err();
        assert!(matches!(e, NetworkError::Link(_)), "{e}");
        assert_eq!(mgr.netlink().links(), links, "the veth was rolled back");
        assert_eq!(mgr.state(), &state);
        assert_eq!(
            mgr.fw.nft().batches.len(),
            batches,
            "the firewall was not touched"
        );
    });
}

#[test]
fn a_refused_firewall_rolls_the_links_back() {
    rt().block_on(async {
        let env = Env::new("fwfail");
        let mut mgr = env
            .open(RecordingNetlink::new(), RecordingNft::default())
            .await;
        let links = mgr.netlink().links();
        let state = mgr.state().clone();
        // Refuse the incremental batch and the whole rebuild.
        mgr.fw.nft_mut().refuse = 2;
        let e = mgr
            .attach("bridge", attach_req("web", &["8080:80"]))
            .await
            .unwrap_err();
        assert!(matches!(e, NetworkError::Firewall(_)), "{e}");
        assert_eq!(mgr.netlink().links(), links);
        assert_eq!(mgr.state(), &state);
        // The next attach works and rebuilds the tables whole.
        mgr.attach("bridge", attach_req("web", &["8080:80"]))
            .await
            .unwrap();
    });
}

#[test]
fn internal_networks_get_no_default_route_and_no_published_ports() {
    rt().block_on(async {
        let env = Env::new("internal");
        let mut mgr = env
            .open(RecordingNetlink::new(), RecordingNft::default())
            .await;
        mgr.create(CreateRequest {
            internal: true,
            ..user_net("secret")
        })
        .await
        .unwrap();
        let ep = mgr
            .attach("secret", attach_req("vault", &["8200:8200"]))
            .await
            .unwrap();
        assert!(!ep.gateway);
        assert!(
            !mgr.netlink()
                .ops
                .iter()
                .any(|op| matches!(op, LinkOp::AddDefaultRoute { .. }))
        );
        let fw = mgr.firewall_state();
        assert!(fw.published.is_empty());
        assert!(fw.bridges.values().any(|b| b.internal));
    });
}
