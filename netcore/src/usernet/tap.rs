//! The TAP device in the container's namespace: made there (so it belongs to the namespace for
//! its whole life) by a short-lived thread, and configured through the link layer's netlink
//! boundary with the layout's addresses and default routes.

use std::io;
use std::path::Path;

use crate::link::{LinkOp, NsRef, RouteVia, RtNetlink, apply_all};

use super::options::{Layout, Options};

/// The TAP device's name in the container.
pub const TAP_NAME: &str = "tap0";

/// The container's MAC on the TAP device, fixed so nothing has to be learned first.
pub const CONTAINER_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x64];

/// The configuration of the container's side, as netlink operations.
pub fn plan(layout: &Layout, ns: &Path) -> Vec<LinkOp> {
    let ns = NsRef::Path(ns.to_path_buf());
    let mut ops = vec![
        LinkOp::SetUp {
            ns: ns.clone(),
            link: "lo".into(),
        },
        LinkOp::AddAddress {
            ns: ns.clone(),
            link: TAP_NAME.into(),
            addr: ipnet::IpNet::new(layout.container.into(), layout.cidr.prefix_len())
                .expect("prefix"),
            nodad: true,
        },
    ];
    if layout.cidr6.is_some() {
        ops.push(LinkOp::AddAddress {
            ns: ns.clone(),
            link: TAP_NAME.into(),
            addr: ipnet::IpNet::new(layout.container6.into(), 64).expect("prefix"),
            nodad: true,
        });
    }
    ops.push(LinkOp::SetUp {
        ns: ns.clone(),
        link: TAP_NAME.into(),
    });
    ops.push(LinkOp::AddDefaultRoute {
        ns: ns.clone(),
        link: TAP_NAME.into(),
        via: RouteVia::Gateway(layout.gateway.into()),
    });
    if layout.cidr6.is_some() {
        ops.push(LinkOp::AddDefaultRoute {
            ns,
            link: TAP_NAME.into(),
            via: RouteVia::Gateway(layout.gateway6.into()),
        });
    }
    ops
}

/// Makes and configures the TAP device in the namespace at `ns` (`/proc/PID/ns/net`).
pub async fn create(ns: &Path, options: &Options) -> io::Result<tun_rs::AsyncDevice> {
    let mtu = options.mtu;
    let dev = crate::netns::run_in(ns, move || {
        tun_rs::DeviceBuilder::new()
            .name(TAP_NAME)
            .layer(tun_rs::Layer::L2)
            .mac_addr(CONTAINER_MAC)
            .mtu(mtu)
            .build_sync()
    })
    .await
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("creating {TAP_NAME} in {}: {e}", ns.display()),
        )
    })?;
    let mut nl = RtNetlink::new();
    apply_all(&mut nl, &plan(&options.layout(), ns))
        .await
        .map_err(|e| {
            io::Error::other(format!("configuring {TAP_NAME} in {}: {e}", ns.display()))
        })?;
    tun_rs::AsyncDevice::new(dev)
}
