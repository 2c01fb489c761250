//! What identifies this host: its name and the IP it reaches etcd from, for per-host keys.

use std::net::{IpAddr, ToSocketAddrs, UdpSocket};

/// The host name, as `gethostname(2)` reports it.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// The local IP address used to reach `url` (an etcd endpoint). A connected UDP socket picks
/// the route without sending anything. Falls back to 127.0.0.1.
pub fn local_ip_towards(url: &str) -> IpAddr {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("");
    let target = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let found = (|| {
        let addr = target.to_socket_addrs().ok()?.next()?;
        let bind = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(bind).ok()?;
        socket.connect(addr).ok()?;
        Some(socket.local_addr().ok()?.ip())
    })();
    found.unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Replaces `{hostname}` and `{ip}` in an etcd key template.
pub fn expand_key(template: &str, hostname: &str, ip: &IpAddr) -> String {
    template
        .replace("{hostname}", hostname)
        .replace("{ip}", &ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_placeholders() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            expand_key("collect_log_{ip}_conf", "web1", &ip),
            "collect_log_10.1.2.3_conf"
        );
        assert_eq!(expand_key("logs/{hostname}", "web1", &ip), "logs/web1");
        assert_eq!(
            expand_key("collect_log_conf", "web1", &ip),
            "collect_log_conf"
        );
    }

    #[test]
    fn loopback_route() {
        assert_eq!(
            local_ip_towards("http://127.0.0.1:2379"),
            IpAddr::from([127, 0, 0, 1])
        );
    }
}
