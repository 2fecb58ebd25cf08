import type { ValidatorJSON } from 'convex/values';
import { useId } from 'react';
import { jsonText } from '../format';
import { controlFor, describe, initialDraft, type Draft } from '../validator';

interface FieldProps {
  name: string;
  validator: ValidatorJSON;
  optional: boolean;
  draft: Draft;
  onChange: (draft: Draft) => void;
}

/** One argument's control, chosen from its validator (see `controlFor`). */
function FieldControl({ name, validator, optional, draft, onChange }: FieldProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const control = controlFor(validator, optional);
  const type = describe(validator);
  const hint = (
    <span id={hintId} className="field-hint">
      <code>{type.length > 60 ? `${type.slice(0, 59)}…` : type}</code>
      {optional && ' (optional)'}
    </span>
  );
  const text = draft.kind === 'text' ? draft.text : '';

  switch (control.kind) {
    case 'object': {
      const object =
        draft.kind === 'object'
          ? draft
          : (initialDraft(validator, optional) as Extract<Draft, { kind: 'object' }>);
      return (
        <fieldset className="arg-object" data-arg={name}>
          <legend>{name}</legend>
          {optional && (
            <label className="field-inline">
              <input
                type="checkbox"
                checked={object.include}
                onChange={(event) => onChange({ ...object, include: event.target.checked })}
              />{' '}
              Include {name}
            </label>
          )}
          {(object.include || !optional) &&
            control.fields.map(({ name: field, field: spec }) => (
              <FieldControl
                key={field}
                name={field}
                validator={spec.fieldType}
                optional={spec.optional}
                draft={object.fields[field] ?? initialDraft(spec.fieldType, spec.optional)}
                onChange={(inner) =>
                  onChange({ ...object, fields: { ...object.fields, [field]: inner } })
                }
              />
            ))}
          {control.fields.length === 0 && <p className="muted">No fields.</p>}
        </fieldset>
      );
    }
    case 'checkbox':
      return (
        <div className="field field-inline" data-arg={name}>
          <input
            id={id}
            type="checkbox"
            checked={draft.kind === 'checkbox' && draft.checked}
            aria-describedby={hintId}
            onChange={(event) => onChange({ kind: 'checkbox', checked: event.target.checked })}
          />
          <label htmlFor={id} className="field-label">
            {name}
          </label>
          {hint}
        </div>
      );
    case 'fixed':
      return (
        <div className="field" data-arg={name}>
          <span className="field-label">{name}</span>
          <output aria-label={name}>
            <code>{jsonText(control.value, 0)}</code>
          </output>
          {hint}
        </div>
      );
    case 'select':
      return (
        <div className="field" data-arg={name}>
          <label htmlFor={id} className="field-label">
            {name}
          </label>
          <select
            id={id}
            value={text}
            aria-describedby={hintId}
            onChange={(event) => onChange({ kind: 'text', text: event.target.value })}
          >
            {optional && <option value="">(not set)</option>}
            {control.options.map((option, index) => (
              <option key={option.label} value={String(index)}>
                {option.label}
              </option>
            ))}
          </select>
          {hint}
        </div>
      );
    case 'text':
      return (
        <div className="field" data-arg={name}>
          <label htmlFor={id} className="field-label">
            {name}
          </label>
          <input
            id={id}
            type={control.input === 'number' ? 'number' : 'text'}
            inputMode={control.input === 'integer' ? 'numeric' : undefined}
            step={control.input === 'number' ? 'any' : undefined}
            value={text}
            aria-describedby={hintId}
            placeholder={control.input === 'id' ? `an id in ${describe(validator)}` : undefined}
            onChange={(event) => onChange({ kind: 'text', text: event.target.value })}
          />
          {hint}
        </div>
      );
    case 'json':
      return (
        <div className="field" data-arg={name}>
          <label htmlFor={id} className="field-label">
            {name} <span className="muted">(JSON)</span>
          </label>
          <textarea
            id={id}
            className="code"
            rows={Math.min(8, Math.max(2, text.split('\n').length))}
            spellCheck={false}
            value={text}
            aria-describedby={hintId}
            onChange={(event) => onChange({ kind: 'text', text: event.target.value })}
          />
          {hint}
        </div>
      );
  }
}

/**
 * A form for a function's arguments, generated from its args validator: an object validator
 * gives one control per field; anything else is a single JSON editor.
 */
export function ArgsForm({
  validator,
  draft,
  onChange,
}: {
  validator: ValidatorJSON;
  draft: Draft;
  onChange: (draft: Draft) => void;
}) {
  if (validator.type === 'object') {
    const control = controlFor(validator, false);
    if (control.kind !== 'object' || draft.kind !== 'object') return null;
    if (control.fields.length === 0)
      return <p className="muted">This function takes no arguments.</p>;
    return (
      <div className="args-form">
        {control.fields.map(({ name, field }) => (
          <FieldControl
            key={name}
            name={name}
            validator={field.fieldType}
            optional={field.optional}
            draft={draft.fields[name] ?? initialDraft(field.fieldType, field.optional)}
            onChange={(inner) => onChange({ ...draft, fields: { ...draft.fields, [name]: inner } })}
          />
        ))}
      </div>
    );
  }
  return (
    <div className="args-form">
      <FieldControl
        name="Arguments"
        validator={{ type: 'any' }}
        optional={false}
        draft={draft}
        onChange={onChange}
      />
    </div>
  );
}

/** The form's starting draft for a function. */
export function startDraft(validator: ValidatorJSON): Draft {
  if (validator.type === 'object') return initialDraft(validator, false);
  return { kind: 'text', text: '{}' };
}
