// aws-jwt-verify's verifySync on the benchmark's tokens and key set.
//
// node verify.mjs INPUT.json, where INPUT holds {userPoolId, clientId, jwks,
// tokens, repeated, seconds}. Every token is verified once first (all must
// pass), then verifySync is timed over the distinct tokens (cycled) and over
// the one repeated token, for `seconds` each, on this one thread. Prints JSON.
import { readFileSync } from "node:fs";
import { CognitoJwtVerifier } from "aws-jwt-verify";

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));

const verifier = CognitoJwtVerifier.create({
  userPoolId: input.userPoolId,
  tokenUse: "access",
  clientId: input.clientId,
});
verifier.cacheJwks(input.jwks);

for (const token of input.tokens) {
  verifier.verifySync(token);
}
verifier.verifySync(input.repeated);

function rate(tokens) {
  const batch = [];
  while (batch.length < 1000) batch.push(...tokens);
  const deadline = input.seconds * 1e9;
  const began = process.hrtime.bigint();
  let calls = 0;
  for (;;) {
    for (const token of batch) verifier.verifySync(token);
    calls += batch.length;
    const elapsed = Number(process.hrtime.bigint() - began);
    if (elapsed >= deadline) return calls / (elapsed / 1e9);
  }
}

const distinctPerSecond = rate(input.tokens);
const repeatedPerSecond = rate([input.repeated]);
const awsJwtVerify = JSON.parse(
  readFileSync(new URL("./node_modules/aws-jwt-verify/package.json", import.meta.url), "utf8"),
).version;
process.stdout.write(
  JSON.stringify({
    node: process.versions.node,
    awsJwtVerify,
    distinctPerSecond,
    repeatedPerSecond,
  }),
);
