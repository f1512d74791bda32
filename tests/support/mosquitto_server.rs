//! A Mosquitto that a test starts on a free port with a password file and (or without) the ACL
//! documented in the README. Never the shared one on 1883.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::basics::{WAIT, free_addr};

pub const GATEWAY_USER: &str = "gateway";
pub const GATEWAY_PASSWORD: &str = "gateway-password";

/// The ACL of the README: each locker its own topics, the gateway everything.
const ACL: &str = "user gateway\ntopic readwrite #\n\npattern write lockers/%u/up\npattern write lockers/%u/status\npattern read lockers/%u/down\n";

pub struct Mosquitto {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto with a password file for the gateway and `lockers`, with or without ACL.
    pub async fn start(lockers: &[(&str, String)], acl: bool) -> Self {
        Self::start_with(lockers, acl, "").await
    }

    /// [`Mosquitto::start`], with `extra` lines appended to its configuration (queue limits).
    pub async fn start_with(lockers: &[(&str, String)], acl: bool, extra: &str) -> Self {
        let addr = free_addr();
        let dir = std::env::temp_dir().join(format!("mosquitto-test-{}", addr.port()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let passwd = dir.join("passwd");
        let _ = std::fs::remove_file(&passwd);
        let mut users = vec![(GATEWAY_USER, GATEWAY_PASSWORD.to_owned())];
        users.extend(lockers.iter().cloned());
        for (user, password) in &users {
            let mut args = vec!["-b"];
            if !passwd.exists() {
                args.push("-c");
            }
            let status = Command::new("mosquitto_passwd")
                .args(&args)
                .arg(&passwd)
                .args([user, password.as_str()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("mosquitto_passwd runs (Debian: apt-get install mosquitto)");
            assert!(status.success(), "mosquitto_passwd failed");
        }
        let mut conf = format!(
            "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\nlog_dest stderr\nlog_type error\n",
            addr.port(),
            passwd.display()
        );
        if acl {
            let acl_file = dir.join("acl");
            std::fs::write(&acl_file, ACL).expect("acl file");
            conf.push_str(&format!("acl_file {}\n", acl_file.display()));
        }
        conf.push_str(extra);
        let conf_file = dir.join("mosquitto.conf");
        std::fs::write(&conf_file, conf).expect("conf file");
        let child = run(&conf_file, addr).await;
        Self { child, addr, dir }
    }
}

/// Runs Mosquitto with `conf_file` until it listens on `addr`, starting it again if it exits
/// first (the port of a broker just killed may take a moment to be free again).
async fn run(conf_file: &std::path::Path, addr: SocketAddr) -> Child {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts (Debian: apt-get install mosquitto)");
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return child;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mosquitto did not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Mosquitto {
    /// Starts Mosquitto with the dynamic-security plugin, its admin the gateway's user (made by
    /// `mosquitto_ctrl dynsec init`): no other client until the gateways create them.
    pub async fn start_dynsec() -> Self {
        let addr = free_addr();
        let dir = std::env::temp_dir().join(format!("mosquitto-dynsec-{}", addr.port()));
        let mut mosquitto = Self {
            child: Command::new("true").spawn().expect("a child"),
            addr,
            dir,
        };
        mosquitto.replace().await;
        mosquitto
    }

    /// Kills this broker and starts a new one with the dynamic-security plugin on the same port,
    /// its state lost: only the admin user is left (a broker replaced).
    pub async fn replace(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).expect("temp dir");
        let dynsec = self.dir.join("dynsec.json");
        let status = Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&dynsec)
            .args([GATEWAY_USER, GATEWAY_PASSWORD])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mosquitto_ctrl runs (Debian: apt-get install mosquitto)");
        assert!(status.success(), "mosquitto_ctrl dynsec init failed");
        // Mosquitto started as root runs as the user mosquitto, and writes the file on each change.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o777));
        let _ = std::fs::set_permissions(&dynsec, std::fs::Permissions::from_mode(0o666));
        let plugin = [
            "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
            "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
            "/usr/lib/mosquitto_dynamic_security.so",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "mosquitto's dynamic-security plugin is installed (Debian: apt-get install mosquitto)",
        );
        let conf = format!(
            "listener {} 127.0.0.1\nallow_anonymous false\nplugin {plugin}\nplugin_opt_config_file {}\npersistence false\nlog_dest stderr\nlog_type error\n",
            self.addr.port(),
            dynsec.display()
        );
        let conf_file = self.dir.join("mosquitto.conf");
        std::fs::write(&conf_file, conf).expect("conf file");
        self.child = run(&conf_file, self.addr).await;
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The gateway's URL of this Mosquitto.
pub fn gateway_url(mosquitto: &Mosquitto) -> String {
    format!(
        "mqtt://{GATEWAY_USER}:{GATEWAY_PASSWORD}@{}",
        mosquitto.addr
    )
}
