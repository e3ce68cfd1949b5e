// Who is signed in: the token's name and role, from GET /api/v1/whoami.
const RANK = { reader: 0, contributor: 1, owner: 2 };

export const session = { id: null, name: null, role: null };

/** Whether the signed-in role may do what `role` may (the API checks again). */
export const can = (role) => session.role !== null && RANK[session.role] >= RANK[role];
