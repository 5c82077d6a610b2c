use super::*;

use p2pchat_proto::{decode, encode_to_vec};
use p2pchat_secure::tls::ServerTls;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::args::Security;
use crate::e2e::Codec;
use crate::security::RunSecurity;
use crate::wire::Encoder;

const MAX: usize = 1 << 20;

/// A TLS server for one connection: sends `Ping(5)`, then echoes every `Message` frame back
/// until the client goes; returns whether the `Pong(5)` answer came.
async fn echo_server(listener: TcpListener, acceptor: TlsAcceptor) -> Result<bool> {
    let (tcp, _) = listener.accept().await?;
    let mut tls = acceptor.accept(tcp).await?;
    tls.write_all(&encode_to_vec(&Frame::Ping(5))).await?;
    tls.flush().await?;
    let (mut buf, mut ponged) = (Vec::new(), false);
    let mut chunk = vec![0; 16 * 1024];
    loop {
        // The bench closes without a TLS close_notify, as a client that goes away does.
        let read = match tls.read(&mut chunk).await {
            Ok(0) => return Ok(ponged),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(ponged),
            other => other?,
        };
        buf.extend_from_slice(&chunk[..read]);
        let mut pos = 0;
        while let Some((frame, used)) = decode(&buf[pos..], MAX)? {
            match frame {
                Frame::Pong(5) => ponged = true,
                Frame::Message(_) => tls.write_all(&buf[pos..pos + used]).await?,
                other => bail!("unexpected {other:?}"),
            }
            pos += used;
        }
        buf.drain(..pos);
        tls.flush().await?;
    }
}

#[tokio::test]
async fn a_tls_link_carries_frames_both_ways_and_answers_pings() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerTls::self_signed(dir.path(), vec!["127.0.0.1".into()]).unwrap();
    let acceptor = TlsAcceptor::from(server.config.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(echo_server(listener, acceptor));

    let security = RunSecurity::new(Security::TlsE2e, "127.0.0.1", addr.port()).unwrap();
    let link = security
        .wrap(connect(addr, None).await.unwrap())
        .await
        .unwrap();
    assert!(matches!(link, Link::Tls(_)));
    let (writer, mut reader) = split(link, Proto::Framed, MAX);
    // Enough to fill many TLS records and the socket buffers: nothing may stay buffered.
    let (count, size) = (20_000, 64);
    let codec = Codec::plain(Encoder::new(Proto::Framed, "", size), size);
    let mut out = Vec::new();
    codec.encode(&mut out, 1, 0..count).unwrap();
    let sending = {
        let writer = writer.clone();
        tokio::spawn(async move { writer.send(&out).await })
    };
    let mut verifier = codec.verifier(1, count);
    reader
        .next(|event| match event {
            Event::Message { id, body } => {
                verifier.check(&id, body)?;
                Ok(verifier.is_done().then_some(()))
            }
            other => bail!("unexpected {other:?}"),
        })
        .await
        .unwrap();
    sending.await.unwrap().unwrap();
    drop((writer, reader));
    assert!(server.await.unwrap().unwrap(), "the ping was not answered");
}
