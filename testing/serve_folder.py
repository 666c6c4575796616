#!/usr/bin/env python3
"""Serves a folder over HTTP on 127.0.0.1 -- or HTTPS with --cert and --key -- for the tests of
the schema repository. Prints "port N" once listening (--port 0: a free port)."""
import argparse
import functools
import http.server
import ssl

parser = argparse.ArgumentParser()
parser.add_argument("folder")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--cert")
parser.add_argument("--key")
args = parser.parse_args()

handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=args.folder)
http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
if args.cert:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("port", server.server_address[1], flush=True)
server.serve_forever()
