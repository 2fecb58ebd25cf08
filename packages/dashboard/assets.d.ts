/** Absolute path of the built dashboard (`dist/`, ends with a separator). */
export declare const dashboardDir: string;
