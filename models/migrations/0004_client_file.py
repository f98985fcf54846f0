from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.clients import ContactKind, PaymentMethodKind, PaymentTerms
from tortoise.fields.base import OnDelete
from tortoise import fields

async def fill_search_names(apps, schema_editor):
    # Existing clients get the accent-free search key new ones get from their action.
    from models.clients import search_key

    db = schema_editor.client
    mark = "$1" if db.capabilities.dialect == "postgres" else "?"
    _count, rows = await db.execute_query("SELECT id, first_name, last_name FROM client")
    for row in rows:
        key = search_key(row["first_name"], row["last_name"])
        await db.execute_query(
            f"UPDATE client SET search_name = {mark} WHERE id = {int(row['id'])}", [key]
        )


class Migration(migrations.Migration):
    dependencies = [('models', '0003_tasks')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Contact',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='contacts', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(default=ContactKind.OTHER, description='PARENT: parent\nGUARDIAN: guardian\nTEACHER: teacher\nLAWYER: lawyer\nSOCIAL_WORKER: social_worker\nDOCTOR: doctor\nREFERRER: referrer\nOTHER: other', enum_type=ContactKind, max_length=16)),
                ('first_name', fields.CharField(max_length=100)),
                ('last_name', fields.CharField(max_length=100)),
                ('search_name', fields.CharField(default='', db_index=True, max_length=220)),
                ('organisation', fields.CharField(default='', max_length=200)),
                ('email', fields.CharField(default='', max_length=254)),
                ('phone', fields.CharField(default='', max_length=40)),
                ('address', fields.TextField(default='', unique=False)),
                ('notes', fields.TextField(default='', unique=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'contact', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='AlternateContact',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='alternate_contacts', on_delete=OnDelete.RESTRICT)),
                ('contact', fields.ForeignKeyField('models.Contact', source_field='contact_id', null=True, db_constraint=True, to_field='id', related_name='circles', on_delete=OnDelete.SET_NULL)),
                ('first_name', fields.CharField(max_length=100)),
                ('middle_name', fields.CharField(default='', max_length=100)),
                ('last_name', fields.CharField(max_length=100)),
                ('relationship', fields.CharField(default='', max_length=60)),
                ('date_of_birth', fields.DateField(null=True)),
                ('email', fields.CharField(default='', max_length=254)),
                ('reminder_email_hours', fields.SmallIntField(null=True)),
                ('reminder_sms_hours', fields.SmallIntField(null=True)),
                ('is_emergency', fields.BooleanField(default=False)),
                ('address_line1', fields.CharField(default='', max_length=200)),
                ('address_line2', fields.CharField(default='', max_length=200)),
                ('postal_code', fields.CharField(default='', max_length=20)),
                ('city', fields.CharField(default='', max_length=100)),
                ('country', fields.CharField(default='', max_length=100)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'alternate_contact', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='Document',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='documents', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=255)),
                ('content_type', fields.CharField(max_length=100)),
                ('size', fields.IntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('storage_key', fields.CharField(unique=True, max_length=200)),
                ('shared_with_client', fields.BooleanField(default=False)),
                ('uploaded_by', fields.ForeignKeyField('models.StaffUser', source_field='uploaded_by_id', null=True, db_constraint=True, to_field='id', related_name='documents', on_delete=OnDelete.SET_NULL)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'document', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='EmailAddress',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='emails', on_delete=OnDelete.RESTRICT)),
                ('address', fields.CharField(max_length=254)),
                ('label', fields.CharField(default='', max_length=40)),
                ('is_primary', fields.BooleanField(default=False)),
            ],
            options={'table': 'email_address', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='PaymentMethod',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', db_constraint=True, to_field='id', related_name='payment_methods', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='CARD: card\nTRANSFER: transfer\nDIRECT_DEBIT: direct_debit\nCHEQUE: cheque\nCASH: cash\nINSURANCE: insurance\nOTHER: other', enum_type=PaymentMethodKind, max_length=16)),
                ('description', fields.CharField(max_length=200)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payment_method', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='PhoneNumber',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client', fields.ForeignKeyField('models.Client', source_field='client_id', null=True, db_constraint=True, to_field='id', related_name='phones', on_delete=OnDelete.RESTRICT)),
                ('alternate_contact', fields.ForeignKeyField('models.AlternateContact', source_field='alternate_contact_id', null=True, db_constraint=True, to_field='id', related_name='phones', on_delete=OnDelete.RESTRICT)),
                ('number', fields.CharField(max_length=40)),
                ('label', fields.CharField(default='', max_length=40)),
                ('is_primary', fields.BooleanField(default=False)),
                ('for_sms', fields.BooleanField(default=False)),
            ],
            options={'table': 'phone_number', 'app': 'models', 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.CreateModel(
            name='Tag',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='tags', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=60)),
                ('color', fields.CharField(default='#64748b', max_length=7)),
            ],
            options={'table': 'tag', 'app': 'models', 'unique_together': (('practice', 'name'),), 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
        ops.AddField(
            model_name='Client',
            name='account_comments',
            field=fields.TextField(default='', db_default='', unique=False),
        ),
        ops.AddField(
            model_name='Client',
            name='address_line1',
            field=fields.CharField(default='', db_default='', max_length=200),
        ),
        ops.AddField(
            model_name='Client',
            name='address_line2',
            field=fields.CharField(default='', db_default='', max_length=200),
        ),
        ops.AddField(
            model_name='Client',
            name='city',
            field=fields.CharField(default='', db_default='', max_length=100),
        ),
        ops.AddField(
            model_name='Client',
            name='clinical_comments',
            field=fields.TextField(default='', db_default='', unique=False),
        ),
        ops.AddField(
            model_name='Client',
            name='country',
            field=fields.CharField(default='', db_default='', max_length=100),
        ),
        ops.AddField(
            model_name='Client',
            name='diagnosis_keywords',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Client',
            name='health_id',
            field=fields.CharField(default='', db_default='', max_length=60),
        ),
        ops.AddField(
            model_name='Client',
            name='insurance_company',
            field=fields.CharField(default='', db_default='', max_length=200),
        ),
        ops.AddField(
            model_name='Client',
            name='middle_name',
            field=fields.CharField(default='', db_default='', max_length=100),
        ),
        ops.AddField(
            model_name='Client',
            name='payment_terms',
            field=fields.CharEnumField(default=PaymentTerms.PER_SESSION, description='PER_SESSION: per_session\nMONTHLY: monthly', db_default=PaymentTerms.PER_SESSION, enum_type=PaymentTerms, max_length=12),
        ),
        ops.AddField(
            model_name='Client',
            name='postal_code',
            field=fields.CharField(default='', db_default='', max_length=20),
        ),
        ops.AddField(
            model_name='Client',
            name='preferred_name',
            field=fields.CharField(default='', db_default='', max_length=100),
        ),
        ops.AddField(
            model_name='Client',
            name='referral',
            field=fields.CharField(default='', db_default='', max_length=300),
        ),
        ops.AddField(
            model_name='Client',
            name='reminder_email_hours',
            field=fields.SmallIntField(null=True),
        ),
        ops.AddField(
            model_name='Client',
            name='reminder_sms_hours',
            field=fields.SmallIntField(null=True),
        ),
        ops.AddField(
            model_name='Client',
            name='search_name',
            field=fields.CharField(default='', db_index=True, db_default='', max_length=420),
        ),
        ops.AddField(
            model_name='Client',
            name='tags',
            field=fields.ManyToManyField('models.Tag', unique=True, db_constraint=True, through='client_tag', forward_key='tag_id', backward_key='client_id', related_name='clients', on_delete=OnDelete.CASCADE),
        ),
        ops.AddField(
            model_name='Practice',
            name='office_admins_see_clinical',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.RunPython(fill_search_names, ops.RunPython.noop),
    ]
