#!/usr/bin/env node
// Cross-language check of the identity service from Node (@grpc/grpc-js).
//
//   node tests/node/client.js <target> <email> <password> <sign-up code>
//
// Signs up, confirms with the code the local Cognito mailed, signs in and
// verifies the access token, over plaintext (loopback only). Prints one JSON
// object on stdout. Tokens are never printed: only whether they came back and
// what VerifyToken says about the access token. On a failed call it prints
// {"error": {...}} and exits 1.
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
const DEADLINE_MS = 10000;

function service(target) {
  const definition = protoLoader.loadSync("identity/v1/identity_service.proto", {
    includeDirs: [PROTOS],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const { IdentityService } = grpc.loadPackageDefinition(definition).identity.v1;
  return new IdentityService(target, grpc.credentials.createInsecure());
}

// Just enough of google.rpc.Status and ErrorInfo to read an error's reason.
const RICH = protobuf.Root.fromJSON({
  nested: {
    Status: {
      fields: {
        code: { type: "int32", id: 1 },
        message: { type: "string", id: 2 },
        details: { rule: "repeated", type: "Any", id: 3 },
      },
    },
    Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } },
    ErrorInfo: { fields: { reason: { type: "string", id: 1 }, domain: { type: "string", id: 2 } } },
  },
});

function reasonOf(err) {
  const raw = err.metadata && err.metadata.get("grpc-status-details-bin")[0];
  if (!raw) {
    return null;
  }
  const status = RICH.lookupType("Status").decode(raw);
  const info = status.details.find((d) => d.type_url.endsWith("/google.rpc.ErrorInfo"));
  return info ? RICH.lookupType("ErrorInfo").decode(info.value).reason : null;
}

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + DEADLINE_MS }, (err, response) => {
      if (err) {
        reject(Object.assign(err, { method }));
      } else {
        resolve(response);
      }
    });
  });
}

async function main(argv) {
  if (argv.length !== 4) {
    throw new Error("usage: node client.js <target> <email> <password> <sign-up code>");
  }
  const [target, email, password, code] = argv;
  const client = service(target);
  try {
    const signUp = await call(client, "SignUp", { email, password });
    await call(client, "Confirm", { email, code });
    const signIn = await call(client, "SignIn", { email, password });
    if (signIn.result !== "tokens") {
      throw new Error(`expected tokens, got ${signIn.result}`);
    }
    const tokens = signIn.tokens;
    const verified = await call(client, "VerifyToken", {
      token: tokens.access_token,
      token_use: "TOKEN_USE_ACCESS",
    });
    return {
      sign_up: {
        medium: signUp.code_delivery.medium,
        destination_masked: signUp.code_delivery.destination !== email,
      },
      sign_in: {
        access_token: tokens.access_token.split(".").length === 3,
        id_token: tokens.id_token.split(".").length === 3,
        refresh_token: tokens.refresh_token.length > 0,
        expires_in: tokens.expires_in,
        token_type: tokens.token_type,
        username: tokens.username,
      },
      verify_token: {
        sub: verified.principal.sub,
        username: verified.principal.username,
        token_use: verified.principal.token_use,
        client_id: verified.principal.client_id,
      },
    };
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  (err) => {
    const error = {
      method: err.method || null,
      code: err.code ?? null,
      reason: reasonOf(err),
      details: err.details || err.message,
    };
    process.stdout.write(`${JSON.stringify({ error })}\n`);
    process.exitCode = 1;
  },
);
