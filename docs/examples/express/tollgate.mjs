// Verifies Tollgate access tokens against its public keys (JWKS): `Authorization: Bearer` or
// the tutorial's `x-access-token`. Sets req.user to the token's claims, or answers 401.
import { createRemoteJWKSet, jwtVerify } from "jose";

export function tollgate(baseUrl, { issuer = "tollgate", audience = "tollgate" } = {}) {
  const keys = createRemoteJWKSet(new URL("/.well-known/jwks.json", baseUrl));
  return async (req, res, next) => {
    const bearer = req.get("authorization")?.match(/^Bearer (.+)$/)?.[1];
    const token = req.get("x-access-token") ?? bearer;
    if (!token) return res.status(401).json({ message: "No token provided!" });
    try {
      const options = { issuer, audience, algorithms: ["EdDSA"] };
      req.user = (await jwtVerify(token, keys, options)).payload;
      next();
    } catch {
      res.status(401).json({ message: "Unauthorized!" });
    }
  };
}
