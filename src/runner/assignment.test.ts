import { describe, expect, it } from 'vitest';
import { parseRunnerAssignment } from './assignment.ts';

describe('parseRunnerAssignment', () => {
  it('the runner takes the ids only when all three are there', () => {
    expect(parseRunnerAssignment({ environment_id: 'env_1', session_id: 'sesn_1', work_id: 'work_1' })).toEqual({ environmentId: 'env_1', sessionId: 'sesn_1', workId: 'work_1' });
    expect(parseRunnerAssignment({ environment_id: 'env_1', session_id: 'sesn_1' })).toBeUndefined();
    expect(parseRunnerAssignment(null)).toBeUndefined();
  });
});
