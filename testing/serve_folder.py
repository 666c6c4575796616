#!/usr/bin/env python3
"""Serves a folder over HTTP on 127.0.0.1 -- or HTTPS with --cert and --key -- for the tests of
the schema repository. Prints "port N" once listening (--port 0: a free port). With
--redirect-to URL, answers every request with a 301 to URL followed by the request's path."""
import argparse
import functools
import http.server
import ssl

parser = argparse.ArgumentParser()
parser.add_argument("folder")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--redirect-to")
args = parser.parse_args()


class Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(301)
        self.send_header("Location", args.redirect_to + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=args.folder)
if args.redirect_to:
    handler = Redirect
http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
if args.cert:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("port", server.server_address[1], flush=True)
server.serve_forever()
