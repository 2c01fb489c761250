"""A TCP relay: LISTEN_PORT -> 127.0.0.1:TARGET_PORT, one thread per direction and connection.

Killing it cuts every connection through it at once, like a network partition between a
daemon and etcd; starting it again heals it. With a certificate and key (PEM) it terminates
TLS on LISTEN_PORT, as a TLS proxy in front of a plain-HTTP store does; with a CA too, it asks
clients for a certificate signed by that CA.

Usage: tcp_relay.py LISTEN_PORT TARGET_PORT [CERT KEY [CLIENT_CA]]
"""
import socket
import ssl
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen))
    server.listen(64)
    tls = None
    if len(sys.argv) > 4:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[3], sys.argv[4])
        if len(sys.argv) > 5:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(sys.argv[5])
    while True:
        client, _ = server.accept()
        if tls:
            try:
                client.settimeout(10)  # a client that never finishes its handshake
                client = tls.wrap_socket(client, server_side=True)
                client.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                # The client refused our certificate, or had none we accept.
                print(f"tcp_relay: TLS handshake failed: {e}", file=sys.stderr, flush=True)
                client.close()
                continue
        try:
            upstream = socket.create_connection(("127.0.0.1", target))
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


main()
