// use tokio::io::{AsyncRead, AsyncWrite};

mod broker;
mod wills;
#[cfg(any(feature = "use-rustls", feature = "use-native-tls"))]
mod tls;

pub use broker::{Accepted, Broker, ClientIdCheck, LinkType, Server, StreamAcceptor};

// pub trait IO: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
// impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> IO for T {}
